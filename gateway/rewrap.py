"""Binding the values encrypted before row bindings existed (gateway.privacy) to their rows.

``gateway secrets rewrap`` reads every encrypted column in batches, and re-encrypts each value
still in the old format with its row's binding. It is idempotent (a bound value is skipped) and
safe beside running gateways: each value is replaced only if it is still the one read
(compare and swap), so a row erased or rewritten meanwhile is left as it is now.

On SQLite (one machine) it runs by itself when a process opens the database, once: SQLite's
``user_version`` (a header integer free for applications; Alembic does not use it) then records
that the file's values are bound, so later starts do not read every row again. On PostgreSQL,
shared by many processes, it is a step of the upgrade, like ``gateway db upgrade``.

A value that does not decrypt at all (written under another key) is counted and left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import InstrumentedAttribute

from gateway import privacy
from gateway.models import (
    Callback,
    Contributor,
    InboundMessage,
    OutboundMessage,
    QuarantinedMessage,
    VoiceCall,
)
from gateway.privacy import AddressVault, Binding, Unreadable

log = logging.getLogger(__name__)

BATCH = 500
# PRAGMA user_version once every value of a SQLite file is bound.
BOUND_USER_VERSION = 2


@dataclass(frozen=True)
class EncryptedColumn:
    column: InstrumentedAttribute[Any]
    keys: tuple[InstrumentedAttribute[Any], ...]
    binding: Callable[..., Binding]

    @property
    def name(self) -> str:
        return f"{self.column.class_.__tablename__}.{self.column.key}"


# Every encrypted column, with the row key its binding is made of (gateway.privacy).
COLUMNS = (
    EncryptedColumn(
        Contributor.address_encrypted,
        (Contributor.channel, Contributor.address_hash),
        privacy.contributor_address,
    ),
    EncryptedColumn(
        InboundMessage.sender_encrypted,
        (InboundMessage.channel, InboundMessage.provider_message_id),
        privacy.inbound_sender,
    ),
    EncryptedColumn(
        InboundMessage.raw_encrypted,
        (InboundMessage.channel, InboundMessage.provider_message_id),
        privacy.inbound_raw,
    ),
    EncryptedColumn(
        OutboundMessage.recipient_encrypted,
        (OutboundMessage.decision_key,),
        privacy.outbound_recipient,
    ),
    EncryptedColumn(VoiceCall.caller_encrypted, (VoiceCall.call_sid,), privacy.voice_caller),
    EncryptedColumn(
        Callback.recipient_encrypted, (Callback.decision_key,), privacy.callback_recipient
    ),
    EncryptedColumn(
        QuarantinedMessage.payload_encrypted,
        (QuarantinedMessage.channel, QuarantinedMessage.provider_key),
        privacy.quarantine_payload,
    ),
)

# Which values of a column a pass rewrites (a SQL condition: the database does the filtering,
# so a table already done is read once, quickly, and only those values cross to Python), and
# how it reads one (the clear value, or Unreadable).
Stale = Callable[[InstrumentedAttribute[Any]], Any]
Read = Callable[[AddressVault, bytes, Binding], bytes]


def unbound(column: InstrumentedAttribute[Any]) -> Any:
    """Values without a format marker: written before row bindings (format 1)."""
    head = func.substr(column, 1, len(privacy.MARKER))
    return column.is_not(None) & (head != privacy.MARKER) & (head != privacy.MARKER3)


def _read_unbound(vault: AddressVault, token: bytes, binding: Binding) -> bytes:
    return vault.decrypt_legacy(token, binding)


@dataclass
class Report:
    rewrapped: dict[str, int] = field(default_factory=dict)
    unreadable: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.rewrapped.values())


def rewrap(
    engine: Engine, vault: AddressVault, *, batch: int = BATCH, dry_run: bool = False
) -> Report:
    """Bind every value still in the old format; with ``dry_run``, only count them."""
    report = Report()
    for encrypted in COLUMNS:
        done, unreadable = _column(engine, vault, encrypted, batch, dry_run)
        report.rewrapped[encrypted.name] = done
        report.unreadable[encrypted.name] = unreadable
    return report


def _column(
    engine: Engine, vault: AddressVault, encrypted: EncryptedColumn, batch: int, dry_run: bool
) -> tuple[int, int]:
    return rewrite_column(engine, vault, encrypted, unbound, _read_unbound, batch, dry_run)


def rewrite_column(
    engine: Engine,
    vault: AddressVault,
    encrypted: EncryptedColumn,
    stale: Stale,
    read: Read,
    batch: int = BATCH,
    dry_run: bool = False,
) -> tuple[int, int]:
    """Encrypt again, under the vault's current key and the row's binding, every value of
    one column that ``stale`` selects, in batches of ``batch`` rows (one transaction each),
    each value replaced only if it is still the one read. Returns (rewritten, unreadable); a
    value that does not ``read`` is counted and left as it is. Used by ``gateway secrets
    rewrap`` and ``gateway keys rotate`` (gateway.rotation)."""
    model = encrypted.column.class_
    column = encrypted.column
    condition = stale(column)
    last_id, done, unreadable = 0, 0, 0
    while True:
        with engine.begin() as connection:
            rows = connection.execute(
                select(model.id, column, *encrypted.keys)
                .where(condition, model.id > last_id)
                .order_by(model.id)
                .limit(batch)
            ).all()
            if not rows:
                return done, unreadable
            for row in rows:
                last_id = row[0]
                token = bytes(row[1])
                binding = encrypted.binding(*(str(k) if k is not None else None for k in row[2:]))
                try:
                    value = read(vault, token, binding)
                except Unreadable:
                    unreadable += 1
                    continue
                if dry_run:
                    done += 1
                    continue
                result = connection.execute(
                    update(model)
                    .where(model.id == last_id, column == token)
                    .values({column.key: vault.encrypt_bytes(value, binding)})
                )
                done += result.rowcount


def rewrap_sqlite_once(engine: Engine, vault: AddressVault) -> None:
    """On SQLite, bind what an older version wrote, the first time this file is opened."""
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as connection:
        version = connection.exec_driver_sql("PRAGMA user_version").scalar() or 0
    if version >= BOUND_USER_VERSION:
        return
    report = rewrap(engine, vault)
    if report.total:
        log.info("%d encrypted value(s) bound to their rows", report.total)
    unreadable = sum(report.unreadable.values())
    if unreadable:
        log.warning(
            "%d encrypted value(s) do not decrypt with this secret key: left as they are",
            unreadable,
        )
    with engine.begin() as connection:
        connection.exec_driver_sql(f"PRAGMA user_version = {BOUND_USER_VERSION}")
