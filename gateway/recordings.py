"""From a recording callback to a voice contribution (the imperative shell for voice).

For one stored recording callback: fetch the audio through the voice plugin's
``fetch_recording`` hook (which fetches only from its provider's configured API host: a
callback cannot make the gateway fetch anything else), keep it under ``DATA_DIR/audio``,
delete it at the provider (``delete_recording``), and file a contribution whose
transcription is pending; the transcription job (``transcribe_contribution``) fills the
text in. A call with no usable audio (hang-up, status ``absent``, under a second of sound)
is recorded as such on the stored message, never as an empty contribution. Audio that cannot
be decoded is still filed, with its file, for a human to hear.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import files, persons, plugins, residents
from gateway.clock import now_utc
from gateway.i18n import translate
from gateway.locks import sender_lock
from gateway.models import (
    Campaign,
    Contribution,
    Contributor,
    InboundMessage,
    VoiceCall,
)
from gateway.moderation import grouping
from gateway.outbox import outbound_row, replies_last_hour
from gateway.phone import can_receive_sms, sms_sender
from gateway.privacy import contributor_address, log_id
from gateway.references import UNASSIGNED_PREFIX, next_reference
from gateway.runtime import Runtime

log = logging.getLogger(__name__)

MIN_SECONDS = 1.0
MAX_ATTEMPTS = 5


class RecordingRefused(ValueError):
    """The callback points somewhere the gateway must not fetch from."""


class RecordingUnavailable(RuntimeError):
    """The provider did not serve the recording (yet); the job is retried."""


def audio_dir(runtime: Runtime) -> Path:
    return runtime.settings.data_path / "audio"


def process_recording(runtime: Runtime, message_id: int) -> tuple[list[int], int | None]:
    """Returns (outbound ids to enqueue, contribution id to transcribe)."""
    with runtime.sessions.begin() as session:
        message = session.get(InboundMessage, message_id)
        if message is None or message.state != "received":
            return [], None
        message.attempts += 1
        attempts = message.attempts
        details = dict((message.attachments or [{}])[0])
        kind, provider = message.kind, message.provider
    if kind in PRIVACY_REQUESTS:
        _privacy_request(runtime, message_id)
        return [], None
    status = str(details.get("status") or "")
    if status != "completed":
        _finish(runtime, message_id, "ignored", f"no audio: recording status {status!r}")
        return [], None
    fetch = plugins.hook("voice", "fetch_recording", provider)
    if fetch is None:
        _finish(runtime, message_id, "failed", "no installed plugin fetches voice recordings")
        return [], None
    target_dir = files.private_dir(audio_dir(runtime) / now_utc().strftime("%Y/%m"))
    try:
        path, content_type = fetch(runtime, details, target_dir)
    except RecordingRefused as exc:
        log.warning("voice message %d refused: %s", message_id, exc)
        _finish(runtime, message_id, "failed", f"refused: {exc}")
        return [], None
    except RecordingUnavailable as exc:
        if attempts >= MAX_ATTEMPTS:
            _finish(runtime, message_id, "failed", str(exc))
            return [], None
        _note_error(runtime, message_id, str(exc))
        raise
    delete = plugins.hook("voice", "delete_recording", provider)
    if runtime.settings.voice_delete_recordings and delete is not None:
        delete(runtime, details)  # kept here, not at the provider

    duration, usable, decode_error = _inspect(path)
    if decode_error is None and not usable:
        path.unlink(missing_ok=True)
        _finish(
            runtime,
            message_id,
            "ignored",
            f"no usable audio ({duration:.1f} s of sound or silence)",
        )
        return [], None
    return _file(runtime, message_id, path, content_type, duration, decode_error)


def _inspect(path: Path) -> tuple[float, bool, str | None]:
    """(duration in seconds, usable speech?, decoding error) of a stored recording."""
    from transcription.audio import AudioError, decode_to_pcm, has_speech_energy

    try:
        audio = decode_to_pcm(path)
    except AudioError as exc:
        return 0.0, False, f"{exc.code}: {exc}"
    usable = audio.duration >= MIN_SECONDS and has_speech_energy(audio)
    return audio.duration, usable, None


def _file(
    runtime: Runtime,
    message_id: int,
    path: Path,
    content_type: str,
    duration: float,
    decode_error: str | None,
) -> tuple[list[int], int | None]:
    with runtime.sessions() as session:
        message = session.get(InboundMessage, message_id)
        assert message is not None
        sender_hash = message.sender_hash
    lock_key = sender_hash or f"message-{message_id}"
    with sender_lock(runtime, "voice", lock_key), runtime.sessions.begin() as session:
        message = session.get(InboundMessage, message_id)
        if message is None or message.state != "received":
            return [], None
        details = dict((message.attachments or [{}])[0])
        call = session.scalar(
            select(VoiceCall)
            .where(VoiceCall.call_sid == str(details.get("call_sid") or ""))
            .with_for_update()  # against gateway.calls.reserve_reference at the same moment
        )
        campaign = session.get(Campaign, call.campaign_id) if call and call.campaign_id else None
        contributor = _contributor(runtime, session, message)
        if call is not None:
            # The call's record needs the caller no more: the contributor row keeps the
            # address (for the receipt and notices); the call keeps its campaign and consent
            # until the sweeper deletes it (gateway.residents.purge_calls).
            call.caller_hash = call.caller_encrypted = None
        prefix = campaign.reference_prefix if campaign else UNASSIGNED_PREFIX
        # The reference the caller heard on the phone, unless it is taken (a second recording
        # on one call); with none reserved, a new one, which the call then keeps.
        reference = call.reference if call is not None else None
        if reference is not None and session.scalar(
            select(Contribution.id).where(Contribution.reference == reference)
        ):
            reference = None
        reference = reference or next_reference(session, prefix)
        if call is not None and call.reference is None:
            call.reference = reference
        contribution = Contribution(
            reference=reference,
            campaign_id=campaign.id if campaign else None,
            contributor_id=contributor.id if contributor else None,
            inbound_message_id=message.id,
            channel="voice",
            text="",
            audio_path=str(path.relative_to(runtime.settings.data_path)),
            audio_duration=duration or None,
            audio_content_type=content_type,
            transcription_status="failed" if decode_error else "pending",
            transcription_error=decode_error,
            broadcast_consent=call.broadcast_consent if call else None,
            callback_consent=call.callback_consent if call else None,
            call_sid=call.call_sid if call else details.get("call_sid"),
            received_at=call.started_at if call else message.received_at,
            language=campaign.language if campaign else runtime.settings.language,
        )
        session.add(contribution)
        session.flush()
        grouping.assign(session, contribution)  # its own group until the transcript arrives
        outbound = _receipt(runtime, session, message, contributor, campaign, contribution)
        message.state, message.processed_at, message.error = "processed", now_utc(), None
        log.info(
            "voice contribution %s filed (%s, %.1f s%s)",
            contribution.reference,
            log_id(sender_hash),
            duration,
            f", {decode_error}" if decode_error else "",
        )
        return outbound, (None if decode_error else contribution.id)


def _contributor(runtime: Runtime, session: Session, message: InboundMessage) -> Contributor | None:
    if not message.sender_hash or message.sender_encrypted is None:
        return None
    address = runtime.vault.sender_for_contributor(message)  # encrypted for its own row
    also = persons.other_hashes(runtime.vault, message)
    return residents.contributor_for(
        session, "voice", message.sender_hash, address, now_utc(), also
    )


def _receipt(
    runtime: Runtime,
    session: Session,
    message: InboundMessage,
    contributor: Contributor | None,
    campaign: Campaign | None,
    contribution: Contribution,
) -> list[int]:
    """The reference by SMS, when the campaign allows it and the caller can receive one."""
    if contributor is None or contributor.opted_out or contributor.address_encrypted is None:
        return []
    if campaign is not None and not campaign.voice_sms_receipt:
        return []
    number = runtime.vault.decrypt_or_none(
        contributor.address_encrypted,
        contributor_address(contributor.channel, contributor.address_hash),
    )
    if number is None or not can_receive_sms(number):
        return []
    recent = replies_last_hour(session, contributor, now_utc())
    if recent >= runtime.settings.replies_per_hour:  # the same cap as for SMS conversations
        return []
    row = outbound_row(
        vault=runtime.vault,
        decision_key=f"in{message.id}-receipt",
        channel="sms",
        contributor=contributor,
        inbound_id=message.id,
        contribution_id=contribution.id,
        sender=sms_sender(runtime.settings, message.recipient, campaign),
        key="receipt.default",
        text=translate("receipt.default", contributor.language, reference=contribution.reference),
        now=now_utc(),
    )
    session.add(row)
    session.flush()
    return [row.id]


# What a caller can ask on the answering machine's keypad (the voice plugin's menu): the same as
# STOP and OUBLIER by SMS, for the person behind the number (gateway.residents).
PRIVACY_REQUESTS = frozenset({"stop", "forget"})


def _privacy_request(runtime: Runtime, message_id: int) -> None:
    """A caller's keypad request, in order with their other messages (the sender's lock)."""
    with runtime.sessions() as session:
        message = session.get(InboundMessage, message_id)
        if message is None or message.sender_hash is None:
            return
        sender_hash = message.sender_hash
    with sender_lock(runtime, "voice", sender_hash), runtime.sessions.begin() as session:
        message = session.get(InboundMessage, message_id)
        if message is None or message.state != "received" or message.sender_hash is None:
            return
        now = now_utc()
        message.state, message.processed_at, message.error = "processed", now, None
        if message.kind == "stop":
            # A row for the person, so that contributions they make later inherit the opt-out.
            address = runtime.vault.sender_for_contributor(message)
            residents.contributor_for(session, "voice", sender_hash, address, now)
            residents.opt_out(session, sender_hash, now)
            log.info("%s opted out by keypad", log_id(sender_hash))
            return
        residents.forget_at_request(session, runtime.settings.data_path, message)


def _finish(runtime: Runtime, message_id: int, state: str, reason: str) -> None:
    with runtime.sessions.begin() as session:
        message = session.get(InboundMessage, message_id)
        if message is not None:
            message.state, message.error, message.processed_at = state, reason, now_utc()
    log.info("voice message %d %s: %s", message_id, state, reason)


def _note_error(runtime: Runtime, message_id: int, reason: str) -> None:
    with runtime.sessions.begin() as session:
        message = session.get(InboundMessage, message_id)
        if message is not None:
            message.error = reason
