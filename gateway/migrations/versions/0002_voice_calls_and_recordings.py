"""voice calls and recordings

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "voice_calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_sid", sa.String(length=64), nullable=False),
        sa.Column("caller_hash", sa.String(length=64), nullable=True),
        sa.Column("caller_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("called", sa.String(length=64), nullable=True),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("broadcast_consent", sa.Boolean(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("call_sid"),
    )
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("voice_greeting", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("voice_greeting_audio", sa.String(length=500), nullable=True))
        batch_op.add_column(
            sa.Column("voice_sms_receipt", sa.Boolean(), nullable=False, server_default=sa.true())
        )

    with op.batch_alter_table("contributions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("audio_duration", sa.Double(), nullable=True))
        batch_op.add_column(sa.Column("audio_content_type", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("transcription_status", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("transcription_error", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("transcript_detail", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("broadcast_consent", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("call_sid", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_contributions_call_sid"), ["call_sid"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_contributions_transcription_status"),
            ["transcription_status"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("contributions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contributions_transcription_status"))
        batch_op.drop_index(batch_op.f("ix_contributions_call_sid"))
        batch_op.drop_column("call_sid")
        batch_op.drop_column("broadcast_consent")
        batch_op.drop_column("transcript_detail")
        batch_op.drop_column("transcription_error")
        batch_op.drop_column("transcription_status")
        batch_op.drop_column("audio_content_type")
        batch_op.drop_column("audio_duration")

    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("voice_sms_receipt")
        batch_op.drop_column("voice_greeting_audio")
        batch_op.drop_column("voice_greeting")

    op.drop_table("voice_calls")
