"""provider_tasks: each external provider task id counted once (replay protection)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 18:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_tasks",
        sa.Column("task_id", sa.String(128), primary_key=True),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("response_id", sa.Integer, sa.ForeignKey("responses.id"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("provider_tasks")
