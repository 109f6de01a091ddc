"""frames_path: where a video's lossless frames are stored, beside its MP4 (what is verified)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("generations", sa.Column("frames_path", sa.Text(), nullable=True))
    op.add_column("responses", sa.Column("frames_path", sa.Text(), nullable=True))
    op.add_column("challenges", sa.Column("reproduction_frames_path", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("challenges") as batch:
        batch.drop_column("reproduction_frames_path")
    with op.batch_alter_table("responses") as batch:
        batch.drop_column("frames_path")
    with op.batch_alter_table("generations") as batch:
        batch.drop_column("frames_path")
