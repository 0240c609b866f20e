"""calling back the callers who asked for it: their consent, and each call back's attempts

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("voice_calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("callback_consent", sa.Boolean(), nullable=True))
    with op.batch_alter_table("contributions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("callback_consent", sa.Boolean(), nullable=True))
    op.create_table(
        "callbacks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("decision_key", sa.String(length=128), nullable=False),
        sa.Column("contribution_id", sa.Integer(), nullable=True),
        sa.Column("contributor_id", sa.Integer(), nullable=True),
        sa.Column("message_key", sa.String(length=64), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("recipient_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("sender", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("provider", sa.String(length=16), nullable=True),
        sa.Column("provider_call_id", sa.String(length=64), nullable=True),
        sa.Column("log", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["contribution_id"], ["contributions.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["contributor_id"], ["contributors.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("decision_key"),
    )
    op.create_index("ix_callbacks_status_due", "callbacks", ["status", "next_attempt_at"])
    op.create_index("ix_callbacks_contribution_id", "callbacks", ["contribution_id"])
    op.create_index("ix_callbacks_contributor_id", "callbacks", ["contributor_id"])


def downgrade() -> None:
    op.drop_table("callbacks")
    with op.batch_alter_table("contributions", schema=None) as batch_op:
        batch_op.drop_column("callback_consent")
    with op.batch_alter_table("voice_calls", schema=None) as batch_op:
        batch_op.drop_column("callback_consent")
