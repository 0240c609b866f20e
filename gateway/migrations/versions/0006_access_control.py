"""access control: API token scopes and expiry, session idle timeout, login throttling

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07

- ``api_tokens.role`` becomes ``api_tokens.scope`` (read, moderate, admin). Existing tokens
  keep the rights they had: moderator becomes moderate, admin stays admin. None of them
  becomes read: that is a new, narrower scope an operator gives a new token.
- ``api_tokens.expires_at``: tokens never expired before; existing ones now expire 90 days
  after this migration runs (the default lifetime of a moderate or admin token), which gives
  operators a season to replace them, e.g. the open-data one by a read token.
- ``login_failures`` keys change meaning (per name and client pair, per client, both hashed;
  gateway.moderation.accounts): the old rows are deleted, which lifts any lock in force.
- Sessions need nothing new: the idle timeout reads ``moderator_sessions.last_seen_at``.

Downgrade: read tokens would become moderator tokens under the old schema (it has no narrower
role), so they are revoked first.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

EXISTING_TOKEN_DAYS = 90

api_tokens = sa.table(
    "api_tokens",
    sa.column("role", sa.String),
    sa.column("scope", sa.String),
    sa.column("expires_at", sa.DateTime(timezone=True)),
    sa.column("revoked_at", sa.DateTime(timezone=True)),
)
login_failures = sa.table("login_failures", sa.column("id", sa.Integer))


def upgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scope", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    expires = datetime.now(UTC) + timedelta(days=EXISTING_TOKEN_DAYS)
    op.execute(
        api_tokens.update().values(
            scope=sa.case((api_tokens.c.role == "admin", "admin"), else_="moderate"),
            expires_at=expires,
        )
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.alter_column("scope", existing_type=sa.String(length=16), nullable=False)
        batch_op.alter_column(
            "expires_at", existing_type=sa.DateTime(timezone=True), nullable=False
        )
        batch_op.drop_column("role")
    op.execute(login_failures.delete())


def downgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("role", sa.String(length=16), nullable=True))
    op.execute(
        api_tokens.update()
        .where(api_tokens.c.scope == "read", api_tokens.c.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    op.execute(
        api_tokens.update().values(
            role=sa.case((api_tokens.c.scope == "admin", "admin"), else_="moderator")
        )
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.alter_column("role", existing_type=sa.String(length=16), nullable=False)
        batch_op.drop_column("expires_at")
        batch_op.drop_column("scope")
    op.execute(login_failures.delete())
