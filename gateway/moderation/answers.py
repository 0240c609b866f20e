"""The city's answer: a second stage after moderation (« la réponse argumentée »).

A published contribution, or every published member of a group, receives an answer: a state
and a reasoned public text, in French and optionally in English. The states are Decidim's
proposal answer states where it has them (``evaluating``, ``accepted``, ``rejected``); ``done``
(the measure was carried out) is the gateway's own, which Decidim follows in its
accountability component instead (gateway.publication.decidim_files maps it to
``accepted`` on import).

Droit de suite: each time the state changes, the contributor is told on their own channel,
quoting the reference, through the same notice path as moderation decisions (opt-out,
erasure, unverified senders and the hourly reply cap all apply). Correcting the text without
changing the state is logged and shown publicly, but not sent again: a typo fixed must not
become a second message to the resident.

Who may answer: moderators and admins, and accounts with the ``answerer`` role, which may
answer published contributions and nothing else (an elected official, a city department);
admins give that role (``gateway accounts create NAME --role answerer``).

A recording of the answer (gateway.moderation.answer_recordings) reads one answer: any change
of the answer takes it off, and its file is deleted once no contribution refers to it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import recorded_answers
from gateway.clock import now_utc
from gateway.i18n import languages, translate
from gateway.models import Contribution
from gateway.moderation.accounts import Actor
from gateway.moderation.actions import (
    ActionError,
    Done,
    clean_text,
    get_contribution,
    log_event,
    notify,
    run,
)
from gateway.runtime import Runtime

log = logging.getLogger(__name__)

ANSWER_STATES = ("evaluating", "accepted", "rejected", "done")
# A reasoned answer, not a report: about a page. The notice quotes at most NOTICE_EXCERPT of it.
MAX_ANSWER = 4000
NOTICE_EXCERPT = 280


def answer(
    runtime: Runtime,
    actor: Actor,
    contribution_ids: Iterable[int],
    state: str,
    text: str,
    *,
    text_en: str | None = None,
) -> Done:
    """Give (or change) the city's answer to published contributions."""
    state, text, text_en = _check(state, text, text_en)
    ids = list(dict.fromkeys(int(i) for i in contribution_ids))
    if not ids:
        raise ActionError("console.errors.nothing_selected", "no contribution selected")
    dropped: list[str] = []  # recordings of an answer that changed (gateway.recorded_answers)

    def work(session: Session, done: Done) -> None:
        for contribution_id in ids:
            contribution = get_contribution(session, contribution_id)
            if _answer_one(runtime, session, done, actor, contribution, state, text, text_en):
                dropped.extend(recorded_answers.strip(contribution))

    done = run(runtime, work)
    recorded_answers.discard_unreferenced(runtime, dropped)
    return done


def answer_group(
    runtime: Runtime,
    actor: Actor,
    group_id: int,
    state: str,
    text: str,
    *,
    text_en: str | None = None,
) -> Done:
    """One answer for every published contribution of a group: each sender is told."""
    return answer(
        runtime, actor, published_members(runtime, group_id), state, text, text_en=text_en
    )


def published_members(runtime: Runtime, group_id: int) -> list[int]:
    """The published contributions of a group, which its answer (and recording) goes to."""
    with runtime.sessions() as session:
        ids = list(
            session.scalars(
                select(Contribution.id)
                .where(Contribution.group_id == group_id, Contribution.status == "published")
                .order_by(Contribution.id)
            )
        )
    if not ids:
        raise ActionError(
            "console.errors.answer_group_empty", "nothing published in this group", 409
        )
    return ids


def _check(state: str, text: str, text_en: str | None) -> tuple[str, str, str | None]:
    if state not in ANSWER_STATES:
        raise ActionError(
            "console.errors.bad_answer_state",
            f"the state must be one of {', '.join(ANSWER_STATES)}",
        )
    text = clean_text(text or "", MAX_ANSWER)
    text_en = clean_text(text_en or "", MAX_ANSWER) or None
    # « Réponse argumentée »: a decision comes with its reasons; "being studied" may not yet.
    if not text and state != "evaluating":
        raise ActionError("console.errors.answer_text_required", "the answer needs a text")
    return state, text, text_en


def _answer_one(
    runtime: Runtime,
    session: Session,
    done: Done,
    actor: Actor,
    contribution: Contribution,
    state: str,
    text: str,
    text_en: str | None,
) -> bool:
    """Give one contribution the answer; False when it already had exactly this one."""
    if contribution.status != "published":
        raise ActionError(
            "console.errors.answer_not_published",
            f"{contribution.reference} is not published: only published contributions are answered",
            409,
            reference=contribution.reference,
        )
    before: dict[str, Any] = {
        "answer_state": contribution.answer_state,
        "answer_text": contribution.answer_text,
        "answer_text_en": contribution.answer_text_en,
    }
    after: dict[str, Any] = {
        "answer_state": state,
        "answer_text": text or None,
        "answer_text_en": text_en,
    }
    if before == after:
        return False  # a double click or a retried call changes nothing and tells no one twice
    state_changed = contribution.answer_state != state
    contribution.answer_state, contribution.answer_text = state, text or None
    contribution.answer_text_en = text_en
    contribution.answered_by, contribution.answered_at = actor.name, now_utc()
    event = log_event(session, done, contribution, actor, "answer", before, after)
    if state_changed:
        result = notify(
            runtime,
            session,
            done,
            contribution,
            f"answer.notice.{state}",
            f"ans{event.id}",
            localized={
                language: {
                    "text": _excerpt(text_en or text if language == "en" else text),
                    "more": _more(runtime, contribution, language),
                }
                for language in languages()
            },
        )
        event.after = {**after, "notice": result}
    log.info("contribution %s: answered %s by %s", contribution.reference, state, actor.name)
    return True


def _excerpt(text: str) -> str:
    if len(text) <= NOTICE_EXCERPT:
        return text
    cut = text[:NOTICE_EXCERPT].rsplit(" ", 1)[0]
    return cut + " …"


def _more(runtime: Runtime, contribution: Contribution, language: str) -> str:
    """Where the whole answer can be read: the campaign's public page, at the contribution.
    Nothing when the gateway has no public address (a loopback PUBLIC_URL): a resident
    cannot open http://127.0.0.1."""
    base = runtime.settings.public_url.rstrip("/")
    host = urlsplit(base).hostname or ""
    if contribution.campaign is None or host in ("127.0.0.1", "localhost", "::1"):
        return ""
    url = f"{base}/campaigns/{contribution.campaign.slug}#{contribution.reference}"
    return " " + translate("answer.more", language, url=url)
