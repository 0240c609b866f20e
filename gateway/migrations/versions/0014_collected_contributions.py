"""contributions collected by agents: when, where and by whom, and the client's key

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contributions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("collected_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("collected_place", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("collected_by", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("collected_key", sa.String(length=64), nullable=True))
    op.create_index(
        "ix_contributions_collected_key", "contributions", ["collected_key"], unique=True
    )


def downgrade() -> None:
    op.drop_index("ix_contributions_collected_key", table_name="contributions")
    with op.batch_alter_table("contributions", schema=None) as batch_op:
        batch_op.drop_column("collected_key")
        batch_op.drop_column("collected_by")
        batch_op.drop_column("collected_place")
        batch_op.drop_column("collected_at")
