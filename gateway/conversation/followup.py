"""The commands that only tell: SUIVI (the state of the sender's own contributions, and the
city's answer to a published one) and AIDE (how to take part in the open campaigns)."""

from __future__ import annotations

from gateway.conversation.model import OPEN, OwnContribution
from gateway.conversation.turn import Turn
from gateway.conversation.words import echo, looks_like_reference, same_reference
from gateway.i18n import translate

FOLLOW_UP_LIST_SIZE = 3
# SUIVI quotes the city's answer up to this length: about two SMS (the whole answer is on the
# campaign's public page).
ANSWER_EXCERPT = 280


def say_help(turn: Turn) -> None:
    keywords = [c.keywords[0] for c in turn.context.campaigns if c.status == OPEN and c.keywords]
    if keywords:
        turn.say("help.default", keywords=", ".join(keywords), example=keywords[0])
    else:
        turn.say("help.no_campaign")


def follow_up(turn: Turn, argument: str) -> bool:
    """Answer SUIVI; False when the words after it are not a reference (a contribution)."""
    own = turn.context.sender.contributions
    if not argument:
        if not own:
            turn.say("followup.none")
            return True
        latest = own[:FOLLOW_UP_LIST_SIZE]
        lines = "\n".join(
            turn.render("followup.line", reference=c.reference, status=_status(turn, c))
            for c in latest
        )
        turn.say("followup.list", lines=lines)
        return True
    if not looks_like_reference(argument):
        return False  # "Suivi des travaux insuffisant" is a contribution, not a request
    found = [c for c in own if same_reference(argument, c.reference)]
    if not found:
        turn.say("followup.not_found", reference=echo(argument.upper()))
    for contribution in found[:FOLLOW_UP_LIST_SIZE]:
        turn.say(
            "followup.status",
            reference=contribution.reference,
            campaign=contribution.campaign_title,
            status=_status(turn, contribution),
        )
        if contribution.status == "published" and contribution.answer_state:
            text = contribution.answer_text or ""
            if turn.language == "en" and contribution.answer_text_en:
                text = contribution.answer_text_en
            state = turn.render(f"answer.state.{contribution.answer_state}")
            if text:
                turn.say("followup.answer", state=state, text=_clip(text, ANSWER_EXCERPT))
    return True


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + " …"


def _status(turn: Turn, contribution: OwnContribution) -> str:
    return status_text(contribution, turn.language)


def status_text(contribution: OwnContribution, language: str) -> str:
    """Where a contribution stands, as its author is told (by SUIVI, or on the phone)."""
    if contribution.status == "published" and contribution.answer_state:
        return translate(
            "followup.answer_state",
            language,
            state=translate(f"answer.state.{contribution.answer_state}", language),
        )
    if contribution.status == "published":
        return translate("status.published", language)
    if contribution.status == "rejected" and contribution.reason:
        return translate("status.rejected_reason", language, reason=contribution.reason)
    # Spam is reported as not kept: naming it would only invite a way around.
    if contribution.status in ("rejected", "spam"):
        return translate("status.rejected", language)
    return translate("status.pending", language)


def answer_text(contribution: OwnContribution, language: str) -> str | None:
    """The city's answer to a published contribution, in the author's language if written."""
    if contribution.status != "published" or not contribution.answer_state:
        return None
    if language == "en" and contribution.answer_text_en:
        return contribution.answer_text_en
    return contribution.answer_text or None
