"""outbound messages found by the provider's id, for delivery reports

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_outbound_provider_id",
        "outbound_messages",
        ["provider", "provider_message_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_outbound_provider_id", table_name="outbound_messages")
