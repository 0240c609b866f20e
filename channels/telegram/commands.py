"""Telegram's commands and answer buttons, as the conversation engine understands them.

The engine speaks SMS keywords (STOP, AIDE, SUIVI…); a chat app has commands (``/stop``) and
buttons. This module translates one into the other, both ways, and keeps no state:

- ``/stop``, ``/oublier``, ``/aide``, ``/info``, ``/suivi PARC-0042``, ``/groupe …`` become the
  keyword messages; ``/start`` (bare, or with a deep link's payload:
  ``t.me/<bot>?start=parc``) becomes the engine's start command. An unknown command is taken
  as ``/aide``.
- The replies that ask a question get buttons (``keyboard``): the campaign menu (``m:<n>``), the
  neighbourhood question (``q:<n>``, ``q:0`` to skip), the welcome's campaigns
  (``k:<slug>``, the same as the deep link) and, in the first reply, the other languages
  (``l:<language>``, the same as its switch word: ``/english``, ``/francais``, whatever the
  step). A tapped button is the answer it stands for if the conversation is still at that
  question; otherwise the resident is told the question is no longer current, and nothing else
  happens. A catalogue's switch words are commands too (``/english``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gateway import conversation as engine
from gateway.i18n import languages, other_languages, switch_word, translate
from gateway.textnorm import fold

COMMANDS = {
    "stop": "STOP",
    "arret": "STOP",
    "oublier": "OUBLIER",
    "forget": "OUBLIER",
    "aide": "AIDE",
    "help": "AIDE",
    "suivi": "SUIVI",
    "status": "SUIVI",
    "groupe": "GROUPE",
    "group": "GROUPE",
    "info": "INFO",  # announcements; "/info stop" ends them
    "news": "INFO",
}
# Shown by BotFather's /setcommands and by `gateway telegram set-webhook` (setMyCommands).
MENU_COMMANDS = ("start", "suivi", "groupe", "info", "aide", "stop", "oublier")
MAX_DATA_BYTES = 64  # the Bot API's limit for callback_data


@dataclass(frozen=True)
class Input:
    """What to give the engine (``text``, ``start``), or a catalogue key to answer instead."""

    text: str = ""
    start: str | None = None
    reply: str | None = None


def from_text(text: str) -> Input:
    if not text.startswith("/"):
        return Input(text)
    head, _, rest = text.partition(" ")
    command = head[1:].split("@", 1)[0].lower()
    rest = rest.strip()
    if command == "start":
        return Input(start=rest)
    keyword = COMMANDS.get(command)
    if keyword is None and engine.language_word(fold(command)) is not None:
        return Input(command)  # /english, /francais: a catalogue's switch words
    if keyword is None:
        return Input("AIDE")
    return Input(f"{keyword} {rest}".strip())


def from_button(data: str, step: str, options: Sequence[str]) -> Input:
    kind, _, value = data.partition(":")
    if kind == "k":
        return Input(start=value)
    if kind == "l":  # the offer of a language, whatever the step: its switch word
        if value in languages() and switch_word(value):
            return Input(switch_word(value))
        return Input(reply="telegram.unknown_button")
    if not value.isdigit():
        return Input(reply="telegram.unknown_button")
    number = int(value)
    if kind == "m" and step == engine.CHOOSE_CAMPAIGN and 1 <= number <= len(options):
        return Input(value)
    if kind == "q" and step == engine.CHOOSE_NEIGHBOURHOOD and 0 <= number <= len(options):
        return Input(value)
    if kind in ("m", "q"):
        return Input(reply="telegram.stale_button")
    return Input(reply="telegram.unknown_button")


Buttons = list[list[dict[str, str]]]


def keyboard(
    key: str, state: engine.State, titles: Mapping[str, str], language: str
) -> Buttons | None:
    """The answer buttons for a reply, given the state the conversation is left in."""
    if key in ("campaign_menu.ask", "campaign_menu.retry") and state.step == engine.CHOOSE_CAMPAIGN:
        return [
            [_button(f"{n}. {titles.get(slug, slug)}", f"m:{n}")]
            for n, slug in enumerate(state.options, start=1)
        ]
    if (
        key in ("neighbourhood.ask", "neighbourhood.retry")
        and state.step == engine.CHOOSE_NEIGHBOURHOOD
    ):
        rows = [[_button(name, f"q:{n}")] for n, name in enumerate(state.options, start=1)]
        rows.append([_button(translate("telegram.skip", language), "q:0")])
        return rows
    if key == engine.LANGUAGE_INVITE:
        return [
            [_button(translate("language.name", other), f"l:{other}")]
            for other in other_languages(language)
        ]
    if key == "start.welcome":
        return [
            [_button(titles.get(slug, slug), f"k:{slug}")]
            for slug in state.options
            if len(f"k:{slug}".encode()) <= MAX_DATA_BYTES
        ] or None
    return None


def _button(text: str, data: str) -> dict[str, str]:
    return {"text": text[:64], "data": data}
