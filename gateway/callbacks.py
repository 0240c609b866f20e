"""Calling back the callers who asked for it: the landline caller's outcome, said on the phone.

A caller whose number cannot receive SMS (a landline) may press a key at the end of the call to
be called back when the city has decided on their contribution or answered it
(gateway.calls.record_callback_consent). Nobody else is ever called. When a moderator's
decision or answer would be texted to such a caller (gateway.moderation.actions.notify), a
``Callback`` is scheduled instead, and the voice plugin's ``place_call`` hook places it:

- only within the calling hours (``VOICE_CALLBACK_HOURS``, local time in ``TIMEZONE``: 9-20 by
  default): a decision taken at night is called the next morning;
- busy, no answer, a failed or cancelled call: tried again ``VOICE_CALLBACK_RETRY_MINUTES``
  later (within the hours), at most ``VOICE_CALLBACK_ATTEMPTS`` attempts, then given up;
- answered: the plugin says the notice's text (``script``) and the call back is done;
- opted out (STOP, keypad 9) or forgotten since: given up, never placed.

Each step is in the row's ``log``, shown to moderators on the contribution's page. The number
is the row's own encrypted copy, wiped once done or given up.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway import plugins, residents
from gateway.clock import now_utc, within_hours
from gateway.i18n import translate
from gateway.messages import SendError
from gateway.models import Callback, Contribution, Contributor
from gateway.privacy import callback_recipient, contributor_address, redact
from gateway.recorded_answers import Recording, in_language, url_for
from gateway.runtime import Runtime
from gateway.settings import Settings

log = logging.getLogger(__name__)

CHANNEL = "voice"
# A call's end as providers report it: answered, or one of the outcomes worth another try.
ANSWERED = "completed"
TRY_AGAIN = frozenset({"busy", "no-answer", "failed", "canceled"})
# The notices of the city's answer (gateway.moderation.answers), whose recording may be played.
ANSWER_NOTICE = "answer.notice."
# Results for gateway.moderation.actions.notify.
SCHEDULED = "callback"


def calling_hours(settings: Settings) -> tuple[int, int]:
    start, _, end = settings.voice_callback_hours.partition("-")
    return int(start), int(end)


def next_window(settings: Settings, moment: datetime) -> datetime:
    """``moment`` if it falls within the calling hours (local time), else when they next
    open."""
    return within_hours(moment, calling_hours(settings), settings.timezone)


def _note(row: Callback, event: str, when: datetime, **details: Any) -> None:
    # A new list: the JSON column sees the change.
    row.log = [*(row.log or []), {"at": when.isoformat(), "event": event, **details}]


def schedule(
    runtime: Runtime,
    session: Session,
    *,
    contribution: Contribution,
    contributor: Contributor,
    decision_key: str,
    key: str,
    text: str,
    sender: str | None,
) -> Callback:
    """A call back with ``text`` (the notice, in the resident's language), in the decision's
    transaction; the same decision twice is one call back."""
    existing = session.scalar(select(Callback).where(Callback.decision_key == decision_key))
    if existing is not None:
        return existing
    now = now_utc()
    row = Callback(
        decision_key=decision_key,
        contribution_id=contribution.id,
        contributor_id=contributor.id,
        message_key=key,
        text=text,
        language=contributor.language,
        recipient_encrypted=runtime.vault.rebind(
            contributor.address_encrypted,
            contributor_address(contributor.channel, contributor.address_hash),
            callback_recipient(decision_key),
        ),
        sender=sender,
        status="queued",
        attempts=0,
        next_attempt_at=next_window(runtime.settings, now),
        log=[],
        created_at=now,
    )
    _note(row, "scheduled", now)
    session.add(row)
    session.flush()
    log.info("contribution %s: a call back is scheduled", contribution.reference)
    return row


def due(session: Session, now: datetime, limit: int = 100) -> list[tuple[int, int]]:
    """(id, attempts) of the call backs to place now."""
    return [
        (row.id, row.attempts)
        for row in session.execute(
            select(Callback.id, Callback.attempts)
            .where(Callback.status == "queued", Callback.next_attempt_at <= now)
            .order_by(Callback.next_attempt_at)
            .limit(limit)
        )
    ]


def _finish(row: Callback, status: str, now: datetime, error: str | None = None) -> None:
    row.status, row.finished_at, row.recipient_encrypted = status, now, None
    row.next_attempt_at = None
    if error is not None:
        row.error = error


def place(runtime: Runtime, callback_id: int) -> str:
    """Place one call back through the voice plugin, if it is due and within the hours;
    returns the row's status after this step."""
    settings = runtime.settings
    now = now_utc()
    with runtime.sessions.begin() as session:
        row = session.get(Callback, callback_id)
        if row is None or row.status != "queued":
            return row.status if row is not None else "gone"
        if row.next_attempt_at is not None and row.next_attempt_at > now:
            return "queued"
        window = next_window(settings, now)
        if window > now:  # outside the calling hours: the next morning
            row.next_attempt_at = window
            _note(row, "waiting for the calling hours", now)
            return "queued"
        person = session.get(Contributor, row.contributor_id) if row.contributor_id else None
        if person is None or residents.is_opted_out(session, person.address_hash):
            _finish(row, "given_up", now, "the person opted out or was forgotten")
            _note(row, "given up: opted out or forgotten", now)
            return "given_up"
        number = runtime.vault.decrypt_or_none(
            row.recipient_encrypted, callback_recipient(row.decision_key)
        )
        if number is None:
            _finish(row, "failed", now, "no readable number")
            return "failed"
        claimed = session.execute(
            update(Callback)
            .where(Callback.id == callback_id, Callback.status == "queued")
            .values(status="calling", attempts=Callback.attempts + 1)
        ).rowcount  # type: ignore[attr-defined]
        if not claimed:
            return "skipped"
        session.refresh(row)
        sender, attempts = row.sender, row.attempts
    place_call = _placer(runtime)
    try:
        if place_call is None:
            raise SendError("no configured voice provider places calls", retryable=False)
        call_id = str(place_call(runtime, number, sender, callback_id))
    except SendError as exc:
        # A provider's refusal quotes the number it refused: stored and logged without it.
        why = redact(str(exc), number)
        log.warning("call back %d not placed: %s", callback_id, why)
        return _after_failure(runtime, callback_id, attempts, why, exc.retryable)
    with runtime.sessions.begin() as session:
        row = session.get(Callback, callback_id)
        if row is None:
            return "gone"
        row.provider_call_id = call_id[:64]
        _note(row, "placed", now_utc(), attempt=attempts)
    log.info("call back %d placed (attempt %d)", callback_id, attempts)
    return "calling"


def _placer(runtime: Runtime) -> Any:
    """The ``place_call`` hook of the first configured plugin that has one (gateway.plugins)."""
    for plugin in plugins.for_channel(CHANNEL):
        if plugin.place_call is not None and plugin.configured(runtime.settings):
            return plugin.place_call
    return None


def _after_failure(
    runtime: Runtime, callback_id: int, attempts: int, why: str, retryable: bool
) -> str:
    now = now_utc()
    with runtime.sessions.begin() as session:
        row = session.get(Callback, callback_id)
        if row is None:
            return "gone"
        _note(row, "not placed", now, attempt=attempts, error=why[:200])
        if retryable and attempts < runtime.settings.voice_callback_attempts:
            row.status = "queued"
            row.next_attempt_at = next_window(
                runtime.settings,
                now + timedelta(minutes=runtime.settings.voice_callback_retry_minutes),
            )
            return "queued"
        _finish(row, "failed", now, why[:500])
        return "failed"


def result(runtime: Runtime, callback_id: int, outcome: str) -> str:
    """How a placed call ended (the provider's report): answered, done; busy, unanswered,
    failed or cancelled, tried again later or given up after the last attempt."""
    now = now_utc()
    settings = runtime.settings
    with runtime.sessions.begin() as session:
        row = session.get(Callback, callback_id)
        if row is None or row.status != "calling":
            return row.status if row is not None else "gone"
        _note(row, outcome, now, attempt=row.attempts)
        if outcome == ANSWERED:
            _finish(row, "done", now)
            return "done"
        if outcome in TRY_AGAIN and row.attempts < settings.voice_callback_attempts:
            row.status = "queued"
            row.next_attempt_at = next_window(
                settings, now + timedelta(minutes=settings.voice_callback_retry_minutes)
            )
            return "queued"
        _finish(row, "given_up", now, f"{outcome} after {row.attempts} attempt(s)")
        return "given_up"


class Script(NamedTuple):
    """What a call back says: the notice's ``text`` in ``language`` after the ``reference``;
    when the city's answer is recorded, ``text`` gives the answer's state only and
    ``recording`` is played after it (gateway.recorded_answers)."""

    language: str
    reference: str
    text: str
    recording: Recording | None = None


def script(runtime: Runtime, callback_id: int) -> Script | None:
    """What to say on a call back being answered; None for an unknown one or one not being
    placed (a forged or replayed request). Read when the resident picks up: a recording made
    after the answer was given is played."""
    with runtime.sessions() as session:
        row = session.get(Callback, callback_id)
        if row is None or row.status != "calling":
            return None
        contribution = (
            session.get(Contribution, row.contribution_id) if row.contribution_id else None
        )
        if contribution is None:
            return Script(row.language, "", row.text)
        recording = _recording(runtime, row, contribution)
        if recording is not None:
            status = translate(
                "followup.answer_state",
                row.language,
                state=translate(f"answer.state.{contribution.answer_state}", row.language),
            )
            text = translate("voice.callback_answer_recorded", row.language, status=status)
            return Script(row.language, contribution.reference, text, recording)
        return Script(row.language, contribution.reference, row.text)


def _recording(runtime: Runtime, row: Callback, contribution: Contribution) -> Recording | None:
    """The recorded answer, for a call back that tells the city's answer (not a moderation
    decision), in the resident's language or the only one there is."""
    if not (row.message_key or "").startswith(ANSWER_NOTICE):
        return None
    if contribution.status != "published" or not contribution.answer_state:
        return None
    token = in_language(contribution.answer_audio, contribution.answer_audio_en, row.language)
    return Recording(url_for(runtime.settings, token)) if token else None


def of_contribution(session: Session, contribution_id: int) -> list[Callback]:
    return list(
        session.scalars(
            select(Callback)
            .where(Callback.contribution_id == contribution_id)
            .order_by(Callback.created_at, Callback.id)
        )
    )
