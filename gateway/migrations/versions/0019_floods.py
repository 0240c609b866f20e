"""inbound flood limits: a contribution's flood mark, and the index that counts a sender's
messages of the last minute

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contributions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("flood", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_inbound_sender_received", ["sender_hash", "received_at"], unique=False
        )
        batch_op.create_index("ix_inbound_received", ["received_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_inbound_received")
        batch_op.drop_index("ix_inbound_sender_received")
    with op.batch_alter_table("contributions", schema=None) as batch_op:
        batch_op.drop_column("flood")
