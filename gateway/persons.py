"""Which look-up hash a person's rows carry, while a key rotation re-hashes them.

A resident is found by the keyed hash of their address (gateway.privacy). Hashes are computed
under the keyring's current key; a rotation (gateway.rotation) then moves each person's rows
from the older key's hash to the new one, one person at a time, in one transaction. Between
the two, a person's rows carry either hash, never both (but for the short race described in
gateway.rotation). So every look-up by address goes through ``resolve``: it computes the
address's hash under every key of the ring (current first) and takes the one the database
already knows, else the current one. A person therefore keeps one hash at a time, and the
many places that compare one row's hash with another's (their backlog, their contributor
rows, their flood window) stay right during a rotation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from gateway.models import Contributor, InboundMessage, QuarantinedMessage, VoiceCall
from gateway.privacy import AddressVault, StoredMessage, inbound_sender


def known_among(connection: Any, hashes: set[str]) -> set[str]:
    """Those of ``hashes`` some row of the database carries (``connection``: a Session or a
    Connection). Indexed look-ups, one per table."""
    known: set[str] = set()
    if not hashes:
        return known
    for column in (
        Contributor.address_hash,
        InboundMessage.sender_hash,
        VoiceCall.caller_hash,
        QuarantinedMessage.sender_hash,
    ):
        missing = hashes - known
        if not missing:
            break
        known |= set(connection.scalars(select(column).where(column.in_(missing)).distinct()))
    return known


def choose(candidates: Sequence[str], known: set[str]) -> str:
    """The hash a person's new row takes: the first of ``candidates`` (current key first) the
    database knows, else the current key's."""
    return next((h for h in candidates if h in known), candidates[0])


def resolve(connection: Any, vault: AddressVault, channel: str, address: str) -> str:
    """The look-up hash of ``address`` as the database knows it (see the module's doc)."""
    candidates = list(vault.lookup_hashes(channel, address).values())
    if len(candidates) == 1:
        return candidates[0]
    return choose(candidates, known_among(connection, set(candidates)))


def every_hash(vault: AddressVault, channel: str, address: str) -> list[str]:
    """The address's hash under every key of the ring, current first."""
    return list(vault.lookup_hashes(channel, address).values())


def other_hashes(vault: AddressVault, message: StoredMessage) -> list[str]:
    """The hashes of a stored message's sender under the ring's other keys than the one it
    carries: where their contributor row may already be, when a rotation moved the person
    between the moment the message was stored and the moment it is filed (the race in
    gateway.rotation). Empty when the sender's address is no longer kept."""
    address = vault.decrypt_or_none(
        message.sender_encrypted, inbound_sender(message.channel, message.provider_message_id)
    )
    if address is None:
        return []
    return [h for h in every_hash(vault, message.channel, address) if h != message.sender_hash]
