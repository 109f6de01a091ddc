"""responses.verdict_detail: what the deciding rung measured (the trajectory path's steps and distances)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 21:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("responses", sa.Column("verdict_detail", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("responses") as batch:
        batch.drop_column("verdict_detail")
