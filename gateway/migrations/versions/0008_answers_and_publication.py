"""the city's answers and publication: answer state and text, Decidim ids, public policy

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contributions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("answer_state", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("answer_text", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("answer_text_en", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("answered_by", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("decidim_id", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column("decidim_published_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("decidim_error", sa.Text(), nullable=True))
        batch_op.create_index("ix_contributions_answer_state", ["answer_state"], unique=False)
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        # The seeds ask to keep rejected contributions visible with their reason: shown.
        batch_op.add_column(
            sa.Column(
                "public_rejected_text",
                sa.Boolean(),
                nullable=False,
                server_default=sa.true(),
            )
        )
        batch_op.add_column(sa.Column("decidim_component", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("decidim_component")
        batch_op.drop_column("public_rejected_text")
    with op.batch_alter_table("contributions", schema=None) as batch_op:
        batch_op.drop_index("ix_contributions_answer_state")
        for column in (
            "decidim_error",
            "decidim_published_at",
            "decidim_id",
            "answered_at",
            "answered_by",
            "answer_text_en",
            "answer_text",
            "answer_state",
        ):
            batch_op.drop_column(column)
