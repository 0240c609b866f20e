"""core hardening: quarantine, person-wide erasure, bound ciphertexts

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quarantined_messages",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("provider_key", sa.String(length=64), nullable=False),
        sa.Column("sender_hash", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("payload_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("quarantined_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_quarantined_messages_provider_key", "quarantined_messages", ["provider_key"]
    )
    op.create_index("ix_quarantined_messages_sender_hash", "quarantined_messages", ["sender_hash"])
    op.create_index(
        "ix_quarantined_messages_quarantined_at", "quarantined_messages", ["quarantined_at"]
    )
    # Erasure and opt-out look a person up by hash on every channel (gateway.residents).
    with op.batch_alter_table("contributors", schema=None) as batch_op:
        batch_op.create_index("ix_contributors_address_hash", ["address_hash"], unique=False)
    with op.batch_alter_table("voice_calls", schema=None) as batch_op:
        batch_op.create_index("ix_voice_calls_caller_hash", ["caller_hash"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("voice_calls", schema=None) as batch_op:
        batch_op.drop_index("ix_voice_calls_caller_hash")
    with op.batch_alter_table("contributors", schema=None) as batch_op:
        batch_op.drop_index("ix_contributors_address_hash")
    op.drop_table("quarantined_messages")
