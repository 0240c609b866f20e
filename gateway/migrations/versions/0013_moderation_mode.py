"""moderation a priori or a posteriori, per campaign: the campaign's mode, and the published
contributions that wait for a moderator's review

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "moderation_mode", sa.String(length=16), server_default="a_priori", nullable=False
            )
        )
    with op.batch_alter_table("contributions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("awaiting_review", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("contributions", schema=None) as batch_op:
        batch_op.drop_column("awaiting_review")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("moderation_mode")
