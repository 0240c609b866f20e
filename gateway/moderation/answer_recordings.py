"""The city's answer recorded (gateway.recorded_answers): attached to an answer, or removed,
by whoever may answer (moderators, admins, ``answerer`` accounts), each change logged.

A recording reads one answer: it is attached to a contribution that has one (its state at
least), in French or in English, and taken off when the answer changes
(gateway.moderation.answers), when it is replaced or removed here, or when the contribution's
author is erased (gateway.residents). Nobody is told of a recording: the notice went with the
answer, and callers hear the recording when they follow their contribution by phone or are
called back. A group's recording is one file shared by its published members.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy.orm import Session

from gateway import recorded_answers
from gateway.models import Contribution
from gateway.moderation.accounts import Actor
from gateway.moderation.actions import ActionError, Done, get_contribution, log_event, run
from gateway.recorded_answers import LANGUAGES, RecordingRefused
from gateway.runtime import Runtime

log = logging.getLogger(__name__)


def _language(language: str | None) -> str:
    language = (language or "fr").strip().lower()
    if language not in LANGUAGES:
        raise ActionError(
            "console.errors.bad_recording_language",
            f"the language must be one of {', '.join(LANGUAGES)}",
        )
    return language


def _column(language: str) -> str:
    return "answer_audio_en" if language == "en" else "answer_audio"


def refused(exc: RecordingRefused) -> ActionError:
    """An upload refused, as the console and the API answer it: 413 for a file too large, 422
    for audio that cannot be the answer (unreadable, too long, silent), with its reason."""
    status = 413 if exc.code == "too_large" else 422
    return ActionError(
        f"console.errors.recording_{exc.code}",
        f"recording refused ({exc.code}): {exc}",
        status,
        **recorded_answers.LIMITS,
    )


def attach(
    runtime: Runtime,
    actor: Actor,
    contribution_ids: Iterable[int],
    data: bytes,
    language: str | None = "fr",
) -> Done:
    """Record the answer of ``contribution_ids`` (one file for all): each must be published
    and answered. A recording already there in that language is replaced (and deleted)."""
    language = _language(language)
    ids = list(dict.fromkeys(int(i) for i in contribution_ids))
    if not ids:
        raise ActionError("console.errors.nothing_selected", "no contribution selected")
    with runtime.sessions() as session:  # refused before the audio is decoded, cheaply
        for contribution_id in ids:
            _check(get_contribution(session, contribution_id))
    data_path = runtime.settings.data_path
    try:
        prepared = recorded_answers.prepare(data_path, data)
    except RecordingRefused as exc:
        log.info("a recorded answer was refused: %s", exc.code)
        raise refused(exc) from exc
    column = _column(language)
    dropped: list[str] = []

    def work(session: Session, done: Done) -> None:
        for contribution_id in ids:
            contribution = get_contribution(session, contribution_id)
            _check(contribution)
            before = getattr(contribution, column)
            if before:
                dropped.append(before)
            setattr(contribution, column, prepared.token)
            log_event(
                session,
                done,
                contribution,
                actor,
                "answer_recording",
                {"language": language, "recorded": bool(before)},
                {
                    "language": language,
                    "recorded": True,
                    "seconds": round(prepared.duration, 1),
                },
            )

    try:
        done = run(runtime, work)
    except BaseException:
        recorded_answers.discard(data_path, [prepared.token])
        raise
    recorded_answers.discard_unreferenced(runtime, dropped)
    log.info("answer recorded (%s) for %d contribution(s) by %s", language, len(ids), actor.name)
    return done


def remove(
    runtime: Runtime, actor: Actor, contribution_ids: Iterable[int], language: str | None = "fr"
) -> Done:
    """Take the recording in ``language`` off ``contribution_ids``; its file is deleted once no
    contribution refers to it."""
    language = _language(language)
    column = _column(language)
    ids = list(dict.fromkeys(int(i) for i in contribution_ids))
    dropped: list[str] = []

    def work(session: Session, done: Done) -> None:
        for contribution_id in ids:
            contribution = get_contribution(session, contribution_id)
            before = getattr(contribution, column)
            if not before:
                continue  # nothing to remove: a retried call changes nothing
            dropped.append(before)
            setattr(contribution, column, None)
            log_event(
                session,
                done,
                contribution,
                actor,
                "answer_recording",
                {"language": language, "recorded": True},
                {"language": language, "recorded": False},
            )

    done = run(runtime, work)
    recorded_answers.discard_unreferenced(runtime, dropped)
    return done


def _check(contribution: Contribution) -> None:
    if contribution.status != "published" or not contribution.answer_state:
        raise ActionError(
            "console.errors.recording_needs_answer",
            f"{contribution.reference} has no answer to record: answer it first",
            409,
            reference=contribution.reference,
        )
