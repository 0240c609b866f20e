"""What moderators do to contributions: decide, classify, correct, anonymise, answer.

The console and the JSON API call the same functions here; each one is a single transaction
that changes the contribution, writes a ``ModerationEvent`` (who, what, when, before/after)
and, for decisions and answers, queues the resident's notice (droit de suite) on the outbound
queue, through the channel they used, unless they opted out or asked to be forgotten. The
notice rows are enqueued once the transaction has committed; if Redis is down they stay
queued and the sweeper sends them.

Decisions and notices, by design:
- publish: the public version is what gets published. When a moderator publishes without
  having written one, it is the text with every suggested redaction applied, so that a phone
  number or an address is never published by a hurried click. Resident told.
- reject: a reason is required; it is shown publicly and sent to the resident.
- spam: no notice (answering spam encourages it).
- reopen: back to pending, no notice.
A decision that does not change the status (publishing a published contribution) records
nothing and sends nothing, so a double click or a retried API call is harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import callbacks, enqueue, plugins, residents, textcap
from gateway.announcements import campaign_opened
from gateway.clock import now_utc
from gateway.i18n import translate
from gateway.models import (
    Campaign,
    Contribution,
    Contributor,
    InboundMessage,
    ModerationEvent,
    OutboundMessage,
)
from gateway.moderation import grouping, redaction
from gateway.moderation.accounts import Actor
from gateway.outbox import outbound_row, replies_last_hour
from gateway.phone import can_receive_sms, sms_sender
from gateway.privacy import contributor_address
from gateway.runtime import Runtime

log = logging.getLogger(__name__)

DECISIONS = {"publish": "published", "reject": "rejected", "spam": "spam", "reopen": "pending"}
STATUSES = ("pending", "published", "rejected", "spam")
CATEGORIES = ("diagnostic", "proposal", "question")
KINDS = ("individual", "collective")
CHANNELS = plugins.channels()  # the installed channel plugins' channels
MAX_TEXT = 5000
MAX_REPLY = 600  # about four SMS segments in UCS-2: an answer, not a letter
MAX_TAGS = 20
# The outcome notices, by decision; spam and reopen tell the resident nothing.
NOTICES = {"publish": "outcome.published", "reject": "outcome.rejected"}


class ActionError(ValueError):
    """A refused action. ``key`` names the moderator-facing message in the catalogue and
    ``status`` the HTTP status the console and the API answer with."""

    def __init__(self, key: str, message: str, status: int = 400, **params: Any) -> None:
        super().__init__(message)
        self.key, self.status, self.params = key, status, params


@dataclass
class Done:
    """What an action changed: contributions, log entries, notices queued."""

    changed: list[int] = field(default_factory=list)
    events: list[int] = field(default_factory=list)
    outbound: list[int] = field(default_factory=list)


T = TypeVar("T")


def run(runtime: Runtime, work: Callable[[Session, Done], None]) -> Done:
    done = Done()
    with runtime.sessions.begin() as session:
        work(session, done)
    if done.outbound:
        enqueue.outbound(runtime, done.outbound)
    return done


def get_contribution(session: Session, contribution_id: int) -> Contribution:
    contribution = session.get(Contribution, contribution_id)
    if contribution is None:
        raise ActionError("console.errors.not_found", "no such contribution", 404)
    return contribution


def log_event(
    session: Session,
    done: Done,
    contribution: Contribution | None,
    actor: Actor,
    action: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    reason: str | None = None,
) -> ModerationEvent:
    event = ModerationEvent(
        contribution_id=contribution.id if contribution else None,
        actor=actor.name,
        action=action,
        reason=reason,
        before=before,
        after=after,
        at=now_utc(),
    )
    session.add(event)
    session.flush()
    done.events.append(event.id)
    if contribution is not None and contribution.id not in done.changed:
        done.changed.append(contribution.id)
    return event


def clean_text(value: str, limit: int = MAX_TEXT) -> str:
    value = value.replace("\r\n", "\n").strip()
    if len(value) > limit:
        raise ActionError(
            "console.errors.too_long", f"text longer than {limit} characters", limit=limit
        )
    return value


# -- decisions --------------------------------------------------------------------------------


def decide(
    runtime: Runtime,
    actor: Actor,
    contribution_ids: Iterable[int],
    decision: str,
    *,
    reason: str | None = None,
) -> Done:
    """Publish, reject (with a public reason), mark as spam or reopen one or more contributions."""
    if decision not in DECISIONS:
        raise ActionError("console.errors.bad_decision", f"unknown decision {decision!r}")
    reason = clean_text(reason or "", 500) or None
    if decision == "reject" and not reason:
        raise ActionError("console.errors.reason_required", "a rejection needs a public reason")
    ids = list(dict.fromkeys(int(i) for i in contribution_ids))
    if not ids:
        raise ActionError("console.errors.nothing_selected", "no contribution selected")

    def work(session: Session, done: Done) -> None:
        for contribution_id in ids:
            _decide_one(
                runtime,
                session,
                done,
                actor,
                get_contribution(session, contribution_id),
                decision,
                reason,
            )

    return run(runtime, work)


def group_members(session: Session, group_id: int, *, pending_only: bool = True) -> list[int]:
    query = select(Contribution.id).where(Contribution.group_id == group_id)
    if pending_only:
        query = query.where(Contribution.status == "pending")
    return list(session.scalars(query.order_by(Contribution.id)))


def decide_group(
    runtime: Runtime, actor: Actor, group_id: int, decision: str, *, reason: str | None = None
) -> Done:
    """One decision for every pending contribution of a group (a tract many residents sent):
    each one is still logged and each sender still told."""
    with runtime.sessions() as session:
        ids = group_members(session, group_id)
    if not ids:
        raise ActionError("console.errors.group_empty", "nothing pending in this group", 409)
    return decide(runtime, actor, ids, decision, reason=reason)


def _decide_one(
    runtime: Runtime,
    session: Session,
    done: Done,
    actor: Actor,
    contribution: Contribution,
    decision: str,
    reason: str | None,
) -> None:
    status = DECISIONS[decision]
    if contribution.status == status and (
        decision != "reject" or reason == contribution.decision_reason
    ):
        return
    before = {"status": contribution.status, "public_text": contribution.public_text}
    contribution.status = status
    contribution.decision_reason = reason if decision == "reject" else None
    contribution.moderated_by, contribution.moderated_at = actor.name, now_utc()
    if decision == "publish" and contribution.public_text is None:
        contribution.public_text = textcap.without_marker(
            redaction.apply(contribution.text or "", language="fr")
        )
    after: dict[str, Any] = {"status": status, "public_text": contribution.public_text}
    event = log_event(session, done, contribution, actor, decision, before, after, reason)
    key = NOTICES.get(decision)
    if key is not None:
        notice = notify(
            runtime, session, done, contribution, key, f"mod{event.id}", reason=reason or ""
        )
        event.after = {**after, "notice": notice}  # a new dict: JSON columns track assignment
    log.info("contribution %s: %s by %s", contribution.reference, decision, actor.name)


# -- notices ------------------------------------------------------------------------------------


def notify(
    runtime: Runtime,
    session: Session,
    done: Done,
    contribution: Contribution,
    key: str,
    decision_key: str,
    localized: Mapping[str, Mapping[str, str]] | None = None,
    **params: str,
) -> str:
    """Queue a notice to the contribution's author; returns what happened, for the log:
    queued; withheld (over the per-resident reply cap, kept visible); no_sender or landline
    (recorded as a failed notice, visible to moderators: never silently dropped); or, with no
    row, opted_out, forgotten, unverified (an email whose sender could not be verified is
    never answered: the address may be forged)."""
    contributor = (
        session.get(Contributor, contribution.contributor_id)
        if contribution.contributor_id
        else None
    )
    if contributor is None or contributor.address_encrypted is None:
        return "forgotten"
    # Opting out is about the person, whichever channel they said STOP on.
    if contributor.opted_out or residents.is_opted_out(session, contributor.address_hash):
        return "opted_out"
    if contribution.sender_verified is False:
        return "unverified"
    channel, sender, problem = _reply_route(runtime, session, contribution, contributor)
    # ``localized``: parameters that depend on the resident's language (an answer's English
    # version, a sentence with a link), by language.
    params = {**params, **(localized or {}).get(contributor.language, {})}
    text = translate(key, contributor.language, reference=contribution.reference, **params)
    now = now_utc()
    row: OutboundMessage = outbound_row(
        vault=runtime.vault,
        decision_key=decision_key,
        channel=channel,
        contributor=contributor,
        inbound_id=None,
        contribution_id=contribution.id,
        sender=sender,
        key=key,
        text=text,
        now=now,
    )
    result = "queued"
    if problem == "landline" and contribution.callback_consent:
        # A caller without SMS who asked, on their call, to be called back with the outcome.
        callbacks.schedule(
            runtime,
            session,
            contribution=contribution,
            contributor=contributor,
            decision_key=decision_key,
            key=key,
            text=text,
            sender=_called_number(session, contribution),
        )
        return callbacks.SCHEDULED
    if problem is not None:
        row.status, row.recipient_encrypted, row.error = "failed", None, NOTICE_PROBLEMS[problem]
        result = problem
        log.warning("contribution %s: notice not sendable (%s)", contribution.reference, problem)
    elif replies_last_hour(session, contributor, now) >= runtime.settings.replies_per_hour:
        # The same cap as the conversation's replies: a bulk decision or a hurried moderator
        # must not flood one resident either.
        row.status, row.recipient_encrypted = "withheld", None
        row.error = f"reply limit reached ({runtime.settings.replies_per_hour} an hour)"
        result = "withheld"
    session.add(row)
    session.flush()
    if result == "queued":
        done.outbound.append(row.id)
    return result


# Why a notice could not be sent, as stored on its row (no address: see gateway.logs).
NOTICE_PROBLEMS = {
    "no_sender": "no number to send from: set the campaign's phone_numbers or the SMS "
    "provider's sending number",
    "landline": "the caller's number cannot receive SMS",
}


def _reply_route(
    runtime: Runtime, session: Session, contribution: Contribution, contributor: Contributor
) -> tuple[str, str | None, str | None]:
    """(channel, sender, problem) to reach the author of a contribution: the channel they
    used; a caller is answered by SMS from the number they called when it can send one, else
    the campaign's number, else the SMS provider's sending number, as their receipt was."""
    recipient = None
    if contribution.inbound_message_id:
        message = session.get(InboundMessage, contribution.inbound_message_id)
        recipient = message.recipient if message else None
    campaign = session.get(Campaign, contribution.campaign_id) if contribution.campaign_id else None
    if contribution.channel == "voice":
        assert contributor.address_encrypted is not None
        number = runtime.vault.decrypt_or_none(
            contributor.address_encrypted,
            contributor_address(contributor.channel, contributor.address_hash),
        )
        # Unreadable (None): the notice's own copy is None too, and the outbound job records
        # it as failed without sending.
        if number is not None and not can_receive_sms(number):
            return "sms", None, "landline"
        sender = sms_sender(runtime.settings, recipient, campaign)
        return "sms", sender, None if sender or _has_messaging_service(runtime) else "no_sender"
    if contribution.channel == "sms":
        sender = recipient or sms_sender(runtime.settings, None, campaign)
        return "sms", sender, None if sender or _has_messaging_service(runtime) else "no_sender"
    return contribution.channel, recipient, None


def _called_number(session: Session, contribution: Contribution) -> str | None:
    """The number the caller called: a call back comes from it, so that they know who calls."""
    if not contribution.inbound_message_id:
        return None
    message = session.get(InboundMessage, contribution.inbound_message_id)
    return message.recipient if message else None


def _has_messaging_service(runtime: Runtime) -> bool:
    """Whether a configured SMS provider picks the sending number itself."""
    return any(
        plugin.picks_sender is not None
        and plugin.configured(runtime.settings)
        and plugin.picks_sender(runtime.settings)
        for plugin in plugins.for_channel("sms")
    )


def reply(runtime: Runtime, actor: Actor, contribution_id: int, text: str) -> Done:
    """Write back to the resident through their own channel (a question, a thank-you)."""
    text = clean_text(text, MAX_REPLY)
    if not text:
        raise ActionError("console.errors.reply_empty", "the answer is empty")

    def work(session: Session, done: Done) -> None:
        contribution = get_contribution(session, contribution_id)
        event = log_event(session, done, contribution, actor, "reply", None, {"text": text})
        result = notify(
            runtime, session, done, contribution, "outcome.answer", f"mod{event.id}", text=text
        )
        event.after = {"text": text, "notice": result}
        if result not in ("queued", callbacks.SCHEDULED):
            # Nothing is kept: the moderator is told at once, and can try again later (a
            # resident over the hourly cap) or knows the resident cannot be answered.
            raise ActionError(
                f"console.notice.{result}",
                f"the resident cannot be reached: {result}",
                429 if result == "withheld" else 409,
            )

    return run(runtime, work)


# -- classification, transcript, public version ---------------------------------------------------


def _tags(values: Iterable[str]) -> list[str]:
    tags: list[str] = []
    for value in values:
        tag = " ".join(value.split())[:60]
        if tag and tag.casefold() not in (t.casefold() for t in tags):
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise ActionError("console.errors.too_many_tags", "too many tags", limit=MAX_TAGS)
    return tags


def classify(
    runtime: Runtime,
    actor: Actor,
    contribution_id: int,
    *,
    category: str | None = None,
    themes: Sequence[str] | None = None,
    tags: Sequence[str] | None = None,
    neighbourhood: str | None = None,
    kind: str | None = None,
) -> Done:
    """Set what is given (None leaves a field as it is; an empty string clears it)."""
    if category and category not in CATEGORIES:
        raise ActionError("console.errors.bad_category", f"unknown category {category!r}")
    if kind and kind not in KINDS:
        raise ActionError("console.errors.bad_kind", f"unknown kind {kind!r}")

    def work(session: Session, done: Done) -> None:
        contribution = get_contribution(session, contribution_id)
        campaign = (
            session.get(Campaign, contribution.campaign_id) if contribution.campaign_id else None
        )
        wanted: dict[str, Any] = {}
        if category is not None:
            wanted["category"] = category or None
        if themes is not None:
            allowed = list(campaign.themes or []) if campaign else []
            unknown = [t for t in themes if t not in allowed]
            if unknown:
                raise ActionError("console.errors.bad_theme", f"unknown theme {unknown[0]!r}")
            wanted["themes"] = [t for t in allowed if t in themes]
        if tags is not None:
            wanted["tags"] = _tags(tags)
        if neighbourhood is not None:
            wanted["neighbourhood"] = " ".join(neighbourhood.split())[:200] or None
        if kind:
            wanted["kind"] = kind
        before = {k: getattr(contribution, k) for k in wanted}
        changed = {k: v for k, v in wanted.items() if before[k] != v}
        if not changed:
            return
        for name, value in changed.items():
            setattr(contribution, name, value)
        log_event(
            session,
            done,
            contribution,
            actor,
            "classify",
            {k: before[k] for k in changed},
            changed,
        )

    return run(runtime, work)


def correct_transcript(runtime: Runtime, actor: Actor, contribution_id: int, text: str) -> Done:
    """Replace the transcript by a moderator's; the machine's stays in ``transcript_machine``."""
    text = clean_text(text)

    def work(session: Session, done: Done) -> None:
        contribution = get_contribution(session, contribution_id)
        if contribution.transcription_status is None:
            raise ActionError("console.errors.no_transcript", "not a voice contribution", 409)
        if text == (contribution.transcript or ""):
            return
        before = {"transcript": contribution.transcript}
        if contribution.transcript_machine is None:
            contribution.transcript_machine = contribution.transcript or ""
        if contribution.text == (contribution.transcript or ""):
            contribution.text = text  # a voice contribution's text is its transcript
        contribution.transcript = text
        if contribution.transcription_status != "done":
            contribution.transcription_status = "done"
        log_event(
            session, done, contribution, actor, "correct_transcript", before, {"transcript": text}
        )
        session.flush()
        grouping.assign(session, contribution)

    return run(runtime, work)


def set_public_text(runtime: Runtime, actor: Actor, contribution_id: int, text: str) -> Done:
    """The anonymised version that is published instead of the text as received."""
    text = clean_text(text)

    def work(session: Session, done: Done) -> None:
        contribution = get_contribution(session, contribution_id)
        if not text:
            raise ActionError("console.errors.public_text_empty", "the public version is empty")
        if text == contribution.public_text:
            return
        before = {"public_text": contribution.public_text}
        contribution.public_text = text
        log_event(session, done, contribution, actor, "anonymise", before, {"public_text": text})

    return run(runtime, work)


# -- campaigns (admin) ------------------------------------------------------------------------


def set_campaign_status(runtime: Runtime, actor: Actor, slug: str, status: str) -> Done:
    if not actor.is_admin:
        raise ActionError("console.errors.admin_only", "admins only", 403)
    if status not in ("draft", "open", "closed"):
        raise ActionError("console.errors.bad_status", f"unknown status {status!r}")

    def work(session: Session, done: Done) -> None:
        campaign = session.scalar(select(Campaign).where(Campaign.slug == slug))
        if campaign is None:
            raise ActionError("console.errors.not_found", "no such campaign", 404)
        if campaign.status == status:
            return
        before = {"campaign": slug, "status": campaign.status}
        campaign.status = status
        after: dict[str, Any] = {"campaign": slug, "status": status}
        if status == "open":
            # Once per person and campaign, however often it is reopened.
            announced = campaign_opened(runtime, session, campaign, now_utc())
            after["announced"] = announced
        log_event(session, done, None, actor, "campaign_status", before, after)

    return run(runtime, work)
