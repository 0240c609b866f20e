"""The questions the engine asks: the one of the step a conversation is at (``ask``), and the
numbered menus of campaigns and of neighbourhoods, in the resident's language."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.conversation.campaigns import by_slug
from gateway.conversation.model import (
    CHOOSE_CAMPAIGN,
    CHOOSE_NEIGHBOURHOOD,
    GROUP_DESCRIPTION,
    State,
)
from gateway.conversation.turn import Turn


def ask(turn: Turn, state: State) -> None:
    """(Re)ask the question of the step the conversation is at."""
    if state.step == CHOOSE_CAMPAIGN:
        turn.say("campaign_menu.ask", menu=campaign_menu(turn, state.options))
    elif state.step == CHOOSE_NEIGHBOURHOOD:
        turn.say("neighbourhood.ask", menu=neighbourhood_menu(turn, state.options))
    elif state.step == GROUP_DESCRIPTION:
        turn.say("group.ask")
    else:
        campaign = by_slug(turn.context.campaigns, state.campaign)
        if campaign is None:
            turn.say("text.ask")
        else:
            turn.say("campaign.question", title=campaign.title, question=campaign.question)


def campaign_menu(turn: Turn, slugs: Sequence[str]) -> str:
    lines = []
    for number, slug in enumerate(slugs, start=1):
        campaign = by_slug(turn.context.campaigns, slug)
        title = campaign.title if campaign else slug
        if campaign and campaign.keywords:
            lines.append(
                turn.render(
                    "campaign_menu.line", number=number, title=title, keyword=campaign.keywords[0]
                )
            )
        else:
            lines.append(turn.render("campaign_menu.line_no_keyword", number=number, title=title))
    return "\n".join(lines)


def neighbourhood_menu(turn: Turn, names: Sequence[str]) -> str:
    lines = [
        turn.render("neighbourhood.line", number=number, name=name)
        for number, name in enumerate(names, start=1)
    ]
    lines.append(turn.render("neighbourhood.skip_line"))
    return "\n".join(lines)
