"""the reference a caller hears at the end of the call, kept on the call until filed

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("voice_calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reference", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("voice_calls", schema=None) as batch_op:
        batch_op.drop_column("reference")
