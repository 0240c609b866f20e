"""One call of the engine being worked out: ``Turn`` accumulates what it decides (the
contributions to file, the replies in order, the updates, opt-out, opt-in, erasure, a language
switch) and turns it into the ``Outcome`` (the first-contact notice and the offer of the other
languages, what erasure discards, the state's expiry)."""

from __future__ import annotations

from gateway.conversation.model import (
    CHOOSE_NEIGHBOURHOOD,
    COLLECTIVE,
    IDLE,
    INDIVIDUAL,
    LANGUAGE_INVITE,
    Context,
    ContributionUpdate,
    NewContribution,
    Outcome,
    Reply,
    State,
)
from gateway.i18n import other_languages, translate


class Turn:
    """What one call decides, accumulated as the message is worked through."""

    def __init__(self, context: Context, silent: bool) -> None:
        self.context = context
        self.silent = silent  # opted out: file what is unambiguous, answer nothing
        self.language = context.sender.language
        self.contributions: list[NewContribution] = []
        self.replies: list[Reply] = []
        self.updates: list[ContributionUpdate] = []
        self.track: int | None = None  # the filed contribution the neighbourhood question is about
        self.opt_out = False
        self.opt_in = False
        self.forget = False
        self.announcements: bool | None = None  # INFO (True) or INFO STOP (False)
        self.switched_language: str | None = None
        self.media: list[str] = []  # this message's media, until something takes them

    def take_media(self) -> list[str]:
        taken, self.media = self.media, []
        return taken

    def say(self, key: str, **params: str) -> None:
        if not self.silent:
            self.replies.append(Reply(key, dict(params)))

    def render(self, key: str, **params: object) -> str:
        """A fragment of a reply (a menu line, a status) in the resident's language."""
        return translate(key, self.language, **params)

    def file(
        self, state: State, neighbourhood: str | None, receipt: str | None, expired: bool = False
    ) -> None:
        """Record the kept text as a contribution and acknowledge it."""
        self.contributions.append(
            NewContribution(
                campaign=state.campaign,
                text=state.text,
                kind=COLLECTIVE if state.collective else INDIVIDUAL,
                group=state.group,
                neighbourhood=neighbourhood,
                received_at=state.received_at or self.context.now,
                expired=expired,
                media=tuple(state.media),
            )
        )
        if receipt is not None and not self.silent:
            self.replies.append(Reply(receipt, {}, len(self.contributions) - 1))

    def outcome(self, state: State, notice: bool) -> Outcome:
        sender = self.context.sender
        send_notice = (
            notice
            and sender.first_contact
            and not self.silent
            and not self.opt_out
            and not self.forget
        )
        if self.forget:
            # Erasure was asked: nothing of this turn is recorded, not even an expired leftover.
            self.contributions.clear()
            self.updates.clear()
            self.track = None
            self.replies = [r for r in self.replies if r.contribution is None]
        if send_notice:
            self.replies.append(Reply("notice", {"organisation": self.context.organisation}))
            if self.switched_language is None:
                # A new resident who has not chosen is offered the other languages, right
                # after the first reply (which the caller may join them to, where it fits).
                invites = [
                    Reply(LANGUAGE_INVITE, language=other)
                    for other in other_languages(self.language)
                ]
                self.replies[1:1] = invites
        if state.step == IDLE:
            state = State()
        else:
            state.expires_at = self.context.now + self.context.expiry
        track = self.track if state.step == CHOOSE_NEIGHBOURHOOD else None
        return Outcome(
            state=state,
            contributions=tuple(self.contributions),
            replies=tuple(self.replies),
            updates=tuple(self.updates),
            track=track,
            opt_out=self.opt_out,
            opt_in=self.opt_in,
            forget=self.forget,
            notice_sent=send_notice,
            language=self.switched_language,
            announcements=None if self.forget else self.announcements,
        )
