"""responses.trajectory_root: the Merkle root of a miner's denoising trajectory (issue 14)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 18:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("responses", sa.Column("trajectory_root", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("responses") as batch:
        batch.drop_column("trajectory_root")
