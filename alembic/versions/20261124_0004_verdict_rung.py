"""responses.verdict_path -> verdict_rung: the ladder rung that decided, not a filesystem path

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 10:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("responses") as batch:
        batch.alter_column("verdict_path", new_column_name="verdict_rung")


def downgrade() -> None:
    with op.batch_alter_table("responses") as batch:
        batch.alter_column("verdict_rung", new_column_name="verdict_path")
