"""the city's answer recorded: the MP3 played to callers instead of the answer's text

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contributions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("answer_audio", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("answer_audio_en", sa.String(length=64), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_contributions_answer_audio"), ["answer_audio"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_contributions_answer_audio_en"), ["answer_audio_en"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("contributions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contributions_answer_audio_en"))
        batch_op.drop_index(batch_op.f("ix_contributions_answer_audio"))
        batch_op.drop_column("answer_audio_en")
        batch_op.drop_column("answer_audio")
