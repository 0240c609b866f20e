"""A resident as a person: every contributor row that shares one address's look-up hash.

A resident who calls the answering machine and texts from the same number is one person
(SMS and voice share the ``phone`` namespace of ``gateway.privacy.AddressVault.lookup_hash``),
although the gateway keeps one ``Contributor`` row per channel. What a resident asks for
themselves, opting out (``STOP``) or being forgotten (``OUBLIER``), is about the person: it
applies to every row of theirs, on every channel of that address space, whichever channel
they asked on, and a row created later for the same person inherits the opt-out.

Erasure (``forget``) removes everything that says who the person was or what they said to
the gateway as a conversation: their contributor rows, conversations, the stored messages that
carried their address and raw payload, the calls that recorded their number, the replies
already sent to them (or still waiting, except the confirmation of this erasure), and the
recordings and voice notes in which their voice can be heard (and the copies made for the
radio). Their contributions stay, as the city's record of what was said, detached from them
and without audio (the transcript stays as their text) or the photos and files they sent (a
face, a home, a document with a name can say who they are; a photo a moderator published is
withdrawn with its file); the whole text of a long message, kept as a file, stays as text.

Everything here runs inside the caller's transaction; files are deleted before it commits, so
that an erasure that fails half-way is retried and completes (a missing file is not an error).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, event, or_, select, update
from sqlalchemy.orm import Session

from gateway import announcements, persons, recorded_answers
from gateway.audio_cache import cached_files
from gateway.models import (
    Callback,
    Contribution,
    Contributor,
    Conversation,
    InboundMessage,
    ModerationEvent,
    OutboundMessage,
    QuarantinedMessage,
    VoiceCall,
)
from gateway.privacy import log_id, new_contributor_id
from gateway.textcap import KIND as TEXT_KIND

log = logging.getLogger(__name__)

AUDIO_KINDS = frozenset({"voice", "audio"})
# Replies that must still reach the resident after the erasure: its own confirmation.
ERASURE_CONFIRMATIONS = frozenset({"forget.confirmed"})


def rows_of(session: Session, address_hash: str) -> list[Contributor]:
    """Every contributor row of the person behind ``address_hash``, oldest first."""
    return list(
        session.scalars(
            select(Contributor)
            .where(Contributor.address_hash == address_hash)
            .order_by(Contributor.id)
        )
    )


def is_opted_out(session: Session, address_hash: str | None) -> bool:
    if not address_hash:
        return False
    return (
        session.scalar(
            select(Contributor.id)
            .where(Contributor.address_hash == address_hash, Contributor.opted_out.is_(True))
            .limit(1)
        )
        is not None
    )


def contributor_for(
    session: Session,
    channel: str,
    address_hash: str,
    address_encrypted: bytes | None,
    now: datetime,
    also: Sequence[str] = (),
) -> Contributor:
    """The person's row for ``channel``, created when missing: a new row takes the person's
    opt-out, language and first-contact notice from the rows they already have, so that
    ``STOP`` by SMS also silences the receipt of their next voice message. ``also``: the
    person's hashes under the keyring's other keys (gateway.persons.other_hashes): a row a
    key rotation has just moved is found there, never duplicated."""
    contributor = session.scalar(
        select(Contributor).where(
            Contributor.channel == channel, Contributor.address_hash == address_hash
        )
    )
    if contributor is None and also:
        contributor = session.scalar(
            select(Contributor)
            .where(Contributor.channel == channel, Contributor.address_hash.in_(list(also)))
            .limit(1)
        )
    if contributor is not None:
        return contributor
    siblings = rows_of(session, address_hash)
    opted_out = [s for s in siblings if s.opted_out]
    noticed = [s.notice_sent_at for s in siblings if s.notice_sent_at is not None]
    contributor = Contributor(
        public_id=new_contributor_id(),
        channel=channel,
        address_hash=address_hash,
        address_encrypted=address_encrypted,
        language=siblings[-1].language if siblings else "fr",
        opted_out=bool(opted_out),
        opted_out_at=opted_out[0].opted_out_at if opted_out else None,
        notice_sent_at=min(noticed) if noticed else None,
        created_at=now,
    )
    session.add(contributor)
    session.flush()
    return contributor


def opt_out(session: Session, address_hash: str, now: datetime) -> int:
    """``STOP``, a provider's unsubscription or an admin's action: the person receives
    nothing more on any channel of this address. Returns the rows changed."""
    changed = session.execute(
        update(Contributor)
        .where(Contributor.address_hash == address_hash, Contributor.opted_out.is_(False))
        .values(opted_out=True, opted_out_at=now)
        .execution_options(synchronize_session="fetch")
    ).rowcount  # type: ignore[attr-defined]
    announcements.stop(session, address_hash)  # STOP ends announcements too, for good
    return int(changed or 0)


def set_language(session: Session, address_hash: str, language: str) -> int:
    """The language a person chose (by SMS, chat, email or on the answering machine's keypad),
    on every channel of their address: their next call, receipt, notice or call back is in
    it. Returns the rows changed."""
    changed = session.execute(
        update(Contributor)
        .where(Contributor.address_hash == address_hash, Contributor.language != language)
        .values(language=language)
        .execution_options(synchronize_session="fetch")
    ).rowcount  # type: ignore[attr-defined]
    return int(changed or 0)


def opt_in(session: Session, address_hash: str) -> int:
    changed = session.execute(
        update(Contributor)
        .where(Contributor.address_hash == address_hash, Contributor.opted_out.is_(True))
        .values(opted_out=False, opted_out_at=None)
        .execution_options(synchronize_session="fetch")
    ).rowcount  # type: ignore[attr-defined]
    return int(changed or 0)


@dataclass
class Erasure:
    """What an erasure removed, for the log and the admin's confirmation (counts only)."""

    contributors: int = 0
    contributions: int = 0
    messages: int = 0
    replies: int = 0
    calls: int = 0
    files: int = 0
    paths: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.contributors} contributor row(s), {self.contributions} contribution(s) "
            f"detached, {self.messages} message(s), {self.replies} reply(ies), "
            f"{self.calls} call(s), {self.files} file(s)"
        )


def forget(
    session: Session,
    data_path: Path,
    address_hash: str,
    *,
    up_to: datetime | None = None,
    trigger: InboundMessage | None = None,
) -> Erasure:
    """Erase the person behind ``address_hash`` (see the module's doc).

    ``up_to``: the stored messages received after it are left alone (they are a new contact,
    processed as such); None erases them all. ``trigger``: the message that asked (``OUBLIER``),
    kept as a bare row (its provider id absorbs a provider's retry) without anything personal.
    """
    erased = Erasure()
    contributors = rows_of(session, address_hash)
    contributor_ids = [c.id for c in contributors]
    erased.contributors = len(contributors)

    # Contributions stay, detached, without the voice that identifies their author.
    contributions: list[Contribution] = (
        list(
            session.scalars(
                select(Contribution).where(Contribution.contributor_id.in_(contributor_ids))
            )
        )
        if contributor_ids
        else []
    )
    files: set[str] = set()
    answer_recordings: list[str] = []
    for contribution in contributions:
        files.update(_strip_audio(contribution))
        files.update(_strip_files(contribution))
        # The normalised copy made for Radio Agora is the same voice (gateway.audio_cache).
        files.update(
            str(path.relative_to(data_path)) for path in cached_files(data_path, contribution.id)
        )
        # The city's recorded answer to it (gateway.recorded_answers) goes too: it speaks to
        # this person's own words. A group's file stays while another member keeps it.
        answer_recordings.extend(recorded_answers.strip(contribution))
        contribution.contributor_id = None
    erased.contributions = len(contributions)
    if answer_recordings:
        session.flush()
        files.update(
            recorded_answers.relative_paths(
                recorded_answers.unreferenced(session, answer_recordings)
            )
        )

    # Stored messages: their sender, raw payload (an email's whole source), attachments.
    query = select(InboundMessage).where(InboundMessage.sender_hash == address_hash)
    if up_to is not None:
        # Everything already handled came before the request, whatever its timestamp says
        # (providers' clocks: a chat app dates messages to the second, button presses are
        # dated here); of what waits, what arrived before it (by arrival order here, or by
        # time for another channel's queue, a recording still being fetched).
        earlier = [InboundMessage.state != "received", InboundMessage.received_at <= up_to]
        if trigger is not None and trigger.id is not None:
            earlier.append(InboundMessage.id <= trigger.id)
        query = query.where(or_(*earlier))
    messages = list(session.scalars(query))
    if trigger is not None and trigger not in messages:
        messages.append(trigger)
    message_ids = [m.id for m in messages]
    for message in messages:
        files.update(attachment_paths(message.attachments))
    # Only the whole text of a long message stays with its contribution (gateway.textcap).
    kept = {p for c in contributions for p in attachment_paths(c.attachments)}
    files -= kept

    # Replies: the ones sent or given up are a record of the conversation; the ones waiting
    # would reach a person who asked to be forgotten. Only the erasure's confirmation goes.
    reply_filter = []
    if contributor_ids:
        reply_filter.append(OutboundMessage.contributor_id.in_(contributor_ids))
    if message_ids:
        reply_filter.append(OutboundMessage.inbound_message_id.in_(message_ids))
    if reply_filter:
        session.flush()
        erased.replies = int(
            session.execute(
                delete(OutboundMessage)
                .where(or_(*reply_filter))
                .where(
                    ~(
                        OutboundMessage.message_key.in_(ERASURE_CONFIRMATIONS)
                        & OutboundMessage.status.in_(("queued", "sending"))
                    )
                )
                .execution_options(synchronize_session="fetch")
            ).rowcount  # type: ignore[attr-defined]
            or 0
        )

    for message in messages:
        if message is trigger:
            message.sender_hash = message.sender_encrypted = message.raw_encrypted = None
            message.text, message.attachments = "", []
            continue
        session.delete(message)
    erased.messages += len(messages)

    # What could not be stored as a message, kept aside whole (gateway.ingest.quarantine).
    erased.messages += int(
        session.execute(
            delete(QuarantinedMessage)
            .where(QuarantinedMessage.sender_hash == address_hash)
            .execution_options(synchronize_session="fetch")
        ).rowcount  # type: ignore[attr-defined]
        or 0
    )

    if contributor_ids:
        # Call backs: the ones waiting would call a person who asked to be forgotten; the
        # ones done keep their log, without the number (already wiped), detached.
        session.execute(
            delete(Callback)
            .where(Callback.contributor_id.in_(contributor_ids))
            .where(Callback.status.in_(("queued", "calling")))
            .execution_options(synchronize_session="fetch")
        )
        session.execute(
            update(Callback)
            .where(Callback.contributor_id.in_(contributor_ids))
            .values(contributor_id=None, recipient_encrypted=None)
            .execution_options(synchronize_session="fetch")
        )

    calls = session.execute(
        delete(VoiceCall)
        .where(VoiceCall.caller_hash == address_hash)
        .execution_options(synchronize_session="fetch")
    ).rowcount  # type: ignore[attr-defined]
    erased.calls = int(calls or 0)

    if contributor_ids:
        session.execute(
            delete(Conversation)
            .where(Conversation.contributor_id.in_(contributor_ids))
            .execution_options(synchronize_session="fetch")
        )
    for contributor in contributors:
        session.delete(contributor)
    session.flush()

    erased.paths = sorted(p for p in files if not still_used(session, p))
    erased.files = delete_files(data_path, erased.paths)
    session.info["erased"] = True
    log.info("%s forgotten: %s", log_id(address_hash), erased.summary())
    return erased


def forget_at_request(session: Session, data_path: Path, message: InboundMessage) -> Erasure:
    """The erasure a resident's own message asks for (OUBLIER, /oublier, the keypad): what
    they sent until then, on every channel of their address; the request kept bare."""
    if message.sender_hash is None:
        return Erasure()
    return forget(
        session, data_path, message.sender_hash, up_to=message.received_at, trigger=message
    )


def attachment_paths(items: Iterable[Any] | None) -> set[str]:
    return {
        str(item["path"])
        for item in items or []
        if isinstance(item, dict) and isinstance(item.get("path"), str) and item["path"]
    }


def _strip_files(contribution: Contribution) -> set[str]:
    """Remove the photos and files from a contribution (published or not); returns their
    paths. The whole text of a long message (kind ``text``) stays: it is what was said."""
    items = list(contribution.attachments or [])
    sent = [i for i in items if isinstance(i, dict) and i.get("kind") != TEXT_KIND]
    if sent:
        contribution.attachments = [i for i in items if i not in sent]
    return attachment_paths(sent)


def _strip_audio(contribution: Contribution) -> set[str]:
    """Remove the recordings from a contribution; returns their paths."""
    removed: set[str] = set()
    if contribution.audio_path:
        removed.add(contribution.audio_path)
        contribution.audio_path = None
        contribution.broadcast_consent = None
        if contribution.transcription_status == "pending":
            contribution.transcription_status = "failed"
            contribution.transcription_error = "audio erased at the resident's request"
    items = list(contribution.attachments or [])
    audio = [i for i in items if isinstance(i, dict) and i.get("kind") in AUDIO_KINDS]
    if audio:
        removed |= attachment_paths(audio)
        contribution.attachments = [i for i in items if i not in audio]
    return removed


def still_used(session: Session, path: str) -> bool:
    """Whether another row still points to the file (an email attachment is stored once by
    content: two residents who sent the same PDF share it)."""
    if session.scalar(select(Contribution.id).where(Contribution.audio_path == path).limit(1)):
        return True
    for model in (Contribution, InboundMessage):
        rows = session.scalars(
            select(model.attachments).where(
                model.attachments.is_not(None),
                _json_text(model).contains(path, autoescape=True),
            )
        )
        for items in rows:
            if path in attachment_paths(items):
                return True
    return False


def _json_text(model: Any) -> Any:
    from sqlalchemy import String, cast

    return cast(model.attachments, String)


def delete_files(data_path: Path, paths: Iterable[str]) -> int:
    """Delete files under the data folder; a path that leaves it is refused, a missing file
    counts as deleted already."""
    root = data_path.resolve()
    deleted = 0
    for relative in paths:
        target = (root / relative).resolve()
        if root not in target.parents:
            log.warning("erasure: refused to delete a path outside the data folder")
            continue
        try:
            target.unlink()
            deleted += 1
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.error("erasure: a file could not be deleted (%s)", type(exc).__name__)
            raise
    return deleted


# Channels whose addresses are one space (the look-up hash is the same for one address):
# gateway.privacy.AddressVault.lookup_hash. A channel not listed is its own space.
_SHARED_SPACES: tuple[tuple[str, ...], ...] = (("sms", "voice"),)


def channels_sharing(channel: str) -> tuple[str, ...]:
    for space in _SHARED_SPACES:
        if channel in space:
            return space
    return (channel,)


_FRENCH_NATIONAL = re.compile(r"0[1-9]\d{8}")


def typed_address(channel: str, typed: str) -> str:
    """An address as a person types it for someone else (an admin at the town hall), in the
    form providers deliver it: a French number written nationally (06 12 34 56 78) becomes
    E.164 (+33612345678), as SMS providers give it; spaces, dots and dashes go."""
    value = " ".join(typed.split())
    if channel in channels_sharing("sms"):
        digits = re.sub(r"[\s.\-()]", "", value)
        if _FRENCH_NATIONAL.fullmatch(digits):
            return "+33" + digits[1:]
        return digits
    return value


def forget_address(runtime: Any, channel: str, address: str, *, actor: str) -> Erasure:
    """Erase a person named by their address (an admin's action, for a resident who asks at
    the town hall, or by post): the same erasure as their own ``OUBLIER``, without a reply.
    Returns what was erased (all zero when the gateway never knew the address)."""
    from gateway.locks import sender_lock

    candidates = persons.every_hash(runtime.vault, channel, typed_address(channel, address))
    with runtime.sessions() as session:
        known = persons.known_among(session, set(candidates))
    # Under every key's hash the database holds for them (rows a key rotation could not
    # re-hash, a rotation under way), current first; the current one when none.
    hashes = [h for h in candidates if h in known] or candidates[:1]
    erased = Erasure()
    for address_hash in hashes:
        # The person's lock (one for every channel of the address): no message of theirs is
        # being filed while they are erased.
        with sender_lock(runtime, channel, address_hash):
            with runtime.sessions.begin() as session:
                part = forget(session, runtime.settings.data_path, address_hash)
                _record(session, actor, "forget_resident", part.summary())
        for name in ("contributors", "contributions", "messages", "replies", "calls", "files"):
            setattr(erased, name, getattr(erased, name) + getattr(part, name))
        erased.paths += part.paths
    return erased


def opt_out_address(runtime: Any, channel: str, address: str, *, actor: str) -> int:
    """Opt a person out by their address (an admin's action): nothing more is sent to them on
    any channel of that address, now or when they write again. Returns the rows changed."""
    now = datetime.now(UTC)
    with runtime.sessions.begin() as session:
        typed = typed_address(channel, address)
        address_hash = persons.resolve(session, runtime.vault, channel, typed)
        if not rows_of(session, address_hash):
            # Never seen yet: a row so that their first message already finds them opted out.
            contributor_for(session, channel, address_hash, None, now)
        changed = opt_out(session, address_hash, now)
        # Their rows under another key's hash too (rows a rotation could not re-hash).
        for other in persons.every_hash(runtime.vault, channel, typed):
            if other != address_hash and rows_of(session, other):
                changed += opt_out(session, other, now)
        _record(session, actor, "opt_out_resident", f"{changed} contributor row(s)")
    log.info("%s opted out by %s", log_id(address_hash), actor)
    return changed


def _record(session: Session, actor: str, action: str, what: str) -> None:
    """The moderation log keeps who acted on a resident, never whom (no address, no id)."""
    session.add(
        ModerationEvent(
            contribution_id=None,
            actor=actor,
            action=action,
            reason=None,
            before=None,
            after={"summary": what},
            at=datetime.now(UTC),
        )
    )


@event.listens_for(Session, "after_commit")
def _after_erasure(session: Session) -> None:
    """Once an erasure is committed on SQLite, the write-ahead log is checkpointed into the
    database and truncated: the log still holds the pages as they were before the erasure
    (with the person in them) until then. SQLite overwrites deleted rows itself
    (``secure_delete``, gateway.db). PostgreSQL's own files are its operator's to manage
    (VACUUM); nothing of the kind is needed for the erasure to be visible."""
    if not session.info.pop("erased", False):
        return
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    if engine.dialect.name != "sqlite":
        return
    try:
        connection = engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            busy = cursor.fetchone()
            cursor.close()
        finally:
            connection.close()
        if busy and busy[0]:
            log.warning("erasure: the database log is in use; it is truncated at the next one")
    except Exception as exc:  # the erasure is committed; this only tidies the files
        log.warning("erasure: database log not truncated (%s)", type(exc).__name__)


# A call's record (voice_calls) serves its call: the menu's choice, the consent asked after
# the message, the recording callback that follows within minutes. Two days is ample.
CALL_RETENTION = timedelta(days=2)


def purge_calls(session: Session, now: datetime) -> int:
    """Delete the records of calls over: what they knew is on the contribution now (campaign,
    consent, time), and the caller's number on the contributor row."""
    count = session.execute(
        delete(VoiceCall)
        .where(VoiceCall.started_at < now - CALL_RETENTION)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    return int(count or 0)
