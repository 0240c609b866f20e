"""From one raw email to one stored message: the path the SMTP receiver and the IMAP poller
share.

``accept`` parses the message (channels.email.parsing), stays silent on what must never be
answered (auto-replies, bounces, mailing lists, no-reply senders: stored nothing, logged), keeps
the attachments the gateway takes (audio for transcription, images and PDFs for moderators)
under ``DATA_DIR``, decides whether its sender is who the ``From:`` says
(channels.email.authentication: the verdict is stored with the message, and an unverified
sender is never answered nor obeyed), and stores the message through
``gateway.ingest.store``: unique on (channel, Message-ID, or a hash of the raw message when it
has none), so a message delivered twice, or read again from the mailbox, is stored once. The
raw message is kept, encrypted with the other personal data (``raw_encrypted``). The caller
acknowledges (SMTP 250, IMAP flag) only once ``accept`` has returned: a database failure
raises, and the mail is offered again.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import mimetypes
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from channels.email.attachments import Attachment
from channels.email.authentication import SmtpPeer, Verdict, verify
from channels.email.parsing import ParsedEmail, parse
from channels.email.settings import of
from gateway import files
from gateway.messages import IncomingMessage

log = logging.getLogger(__name__)

CHANNEL = "email"
PROVIDER = "email"  # the plugin's name (channels/email/plugin.py)
# Attachment kinds as the console lists them (gateway/locales/console: attachment_kinds).
_KINDS = {"audio": "audio", "image": "image", "pdf": "file"}


@dataclass(frozen=True)
class Accepted:
    # stored | duplicate | ignored | quarantined (kept aside with its reason: acknowledge it,
    # it must not hold up the mail behind it)
    outcome: str
    reason: str = ""
    message_id: int | None = None


def split_address(address: str) -> tuple[str, str, str]:
    """("participez", "parc", "ville.fr") for participez+parc@ville.fr; the tag may be ""."""
    local, _, domain = address.strip().lower().rpartition("@")
    base, _, tag = local.partition("+")
    return base, tag, domain


def ours(address: str, own: str) -> bool:
    """Whether an address is the gateway's own, plus-tagged or not."""
    if not own or "@" not in address:
        return False
    base, _, domain = split_address(address)
    own_base, _, own_domain = split_address(own)
    return (base, domain) == (own_base, own_domain)


def our_recipient(candidates: list[str] | tuple[str, ...], own: str) -> str | None:
    """The address the resident wrote to, among the envelope's and the headers' recipients:
    a plus-tagged one first (it names a campaign), else the plain one."""
    mine = [a.strip().lower() for a in candidates if ours(a, own)]
    tagged = [a for a in mine if split_address(a)[1]]
    found = tagged or mine
    return found[0] if found else None


def _save(data_path: Path, item: Attachment) -> dict[str, Any]:
    digest = hashlib.sha256(item.data).hexdigest()[:32]
    ext = mimetypes.guess_extension(item.content_type) or Path(item.filename).suffix or ".bin"
    ext = ext if len(ext) <= 6 and ext[1:].isalnum() else ".bin"
    folder = "audio" if item.kind == "audio" else "media"
    relative = f"{folder}/email/{digest}{ext}"
    target = data_path / relative
    if not target.exists():  # the same content twice (a duplicate delivery): one file
        files.private_dir(target.parent)  # owner-only, like all of DATA_DIR (gateway.files)
        partial = target.with_suffix(target.suffix + ".part")
        files.write_private(partial, item.data)
        partial.replace(target)
    return {
        "kind": _KINDS.get(item.kind, "file"),
        "path": relative,
        "content_type": item.content_type,
        "size": len(item.data),
        "name": item.filename or None,
    }


def to_incoming(
    parsed: ParsedEmail,
    raw: bytes,
    *,
    data_path: Path,
    own_address: str,
    envelope_to: tuple[str, ...] = (),
    too_large: bool = False,
    verdict: Verdict | None = None,
) -> IncomingMessage:
    attachments = [_save(data_path, item) for item in parsed.attachments]
    attachments += [{"kind": "refused", "name": label} for label in parsed.refused]
    if too_large:
        attachments.append({"kind": "refused", "name": "message (too large)"})
    text = parsed.text
    meta = {
        "message_id": parsed.message_id,
        "subject": parsed.subject,
        "in_reply_to": parsed.in_reply_to,
        "references": list(parsed.references),
        "eml": base64.b64encode(raw).decode("ascii"),
        # Read by channels.email.routing.sender_verified; absent: not verified.
        "authentication": verdict.to_meta() if verdict else None,
    }
    return IncomingMessage(
        channel=CHANNEL,
        provider_message_id=parsed.message_id,
        sender=parsed.sender,
        recipient=our_recipient([*envelope_to, *parsed.recipients], own_address),
        text=text,
        received_at=datetime.now(UTC),
        attachments=attachments,
        raw=meta,
        provider=PROVIDER,
    )


def accept(
    runtime: Any,
    raw: bytes,
    *,
    envelope_to: tuple[str, ...] = (),
    too_large: bool = False,
    peer: SmtpPeer | None = None,
) -> Accepted:
    """Parse and store one email (see the module doc). Raises SQLAlchemyError when the
    database is down, so that the caller does not acknowledge the mail. A message that cannot
    be read or stored as one (a crafted header, a field too long for its column) is
    quarantined whole with its reason (gateway.ingest.quarantine): acknowledged, never offered
    again, never blocking the mail behind it.

    ``peer``: the SMTP connection the mail came by (the gateway's receiver); None when the
    city's mail server delivered it (IMAP, a pipe), whose Authentication-Results count."""
    from sqlalchemy.exc import SQLAlchemyError

    from gateway import ingest

    try:
        return _accept(runtime, raw, envelope_to=envelope_to, too_large=too_large, peer=peer)
    except SQLAlchemyError as exc:
        if ingest.is_outage(exc):
            raise
        problem = f"refused by the database: {type(exc).__name__}"
    except Exception as exc:  # a message this code cannot read: set aside, not retried forever
        problem = f"could not be read: {type(exc).__name__}"
        log.error("email could not be read; quarantined", exc_info=exc)
    digest = hashlib.sha256(raw).hexdigest()
    ingest.quarantine(
        runtime,
        IncomingMessage(
            channel=CHANNEL,
            provider_message_id=f"sha256:{digest}",
            sender=_sender_or_empty(raw),
            recipient=None,
            text="",
            received_at=datetime.now(UTC),
            raw={"eml": base64.b64encode(raw).decode("ascii")},
            provider=PROVIDER,
        ),
        problem,
    )
    return Accepted("quarantined", problem)


def _sender_or_empty(raw: bytes) -> str:
    """The From address of a message that could not be read otherwise (so that an erasure
    finds it in quarantine), or "" when even that cannot be had."""
    from email.parser import BytesHeaderParser
    from email.utils import parseaddr

    try:
        header = BytesHeaderParser().parsebytes(raw[:65536]).get("From") or ""
        return parseaddr(str(header))[1].strip().lower()
    except Exception:
        return ""


def _accept(
    runtime: Any,
    raw: bytes,
    *,
    envelope_to: tuple[str, ...],
    too_large: bool,
    peer: SmtpPeer | None,
) -> Accepted:
    from gateway import ingest
    from gateway.privacy import log_id

    settings, email = runtime.settings, of(runtime.settings)
    parsed = parse(raw, max_attachment_bytes=email.email_max_attachment_bytes)
    if parsed.automatic:
        log.info("email %s not answered: %s", _short(parsed.message_id), parsed.automatic)
        return Accepted("ignored", parsed.automatic)
    if not parsed.sender or "@" not in parsed.sender:
        log.info("email %s ignored: no sender address", _short(parsed.message_id))
        return Accepted("ignored", "no sender")
    verdict = verify(email, raw, parsed.sender, peer)
    incoming = to_incoming(
        parsed,
        raw,
        data_path=settings.data_path,
        own_address=email.email_address,
        envelope_to=envelope_to,
        too_large=too_large,
        verdict=verdict,
    )
    (stored,) = ingest.store(runtime, [incoming])
    sender = log_id(runtime.vault.lookup_hash(CHANNEL, parsed.sender))
    if stored.duplicate:
        return Accepted("duplicate", message_id=None)
    if stored.quarantined:
        return Accepted("quarantined", "refused as a message (see gateway quarantine list)")
    log.info(
        "email %s from %s stored (%d attachment(s) kept, %d refused); sender %s (%s: %s)",
        _short(parsed.message_id),
        sender,
        len(parsed.attachments),
        len(parsed.refused),
        "verified" if verdict.verified else "NOT verified",
        verdict.method,
        verdict.detail,
    )
    return Accepted("stored", message_id=stored.message_id)


def _short(message_id: str) -> str:
    # A Message-ID often carries the sender's domain or name: log a digest of it.
    return hashlib.sha256(message_id.encode()).hexdigest()[:10]
