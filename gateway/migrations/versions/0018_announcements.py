"""announcements to the residents who asked (INFO): their opt-in, and a campaign's synthesis

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contributors", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("announcements", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(
            sa.Column("announcements_at", sa.DateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("synthesis_url", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("synthesis_summary", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("synthesis_published_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("synthesis_published_at")
        batch_op.drop_column("synthesis_summary")
        batch_op.drop_column("synthesis_url")
    with op.batch_alter_table("contributors", schema=None) as batch_op:
        batch_op.drop_column("announcements_at")
        batch_op.drop_column("announcements")
