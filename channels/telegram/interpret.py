"""What a stored Telegram message means before the conversation engine sees it (the plugin's
``interpret`` hook): a command (/start, /suivi, ...), a tapped button, or an edit of an
earlier message.

Edits are the core's (gateway.edits): an edit that arrives before its message was read
replaces the text; one that arrives once the campaign menu is open replaces the text the
conversation keeps; a filed contribution is not changed, and the resident is told to send a
new message.
"""

from __future__ import annotations

from channels.telegram import commands
from gateway import edits
from gateway.plugins import Arrival, Interpretation


def interpret(arrival: Arrival) -> Interpretation:
    message, state, session = arrival.message, arrival.state, arrival.session
    if message.kind == "edit":
        noted = edits.apply_edit(session, message, state, arrival.conversation)
        return Interpretation(reply="telegram.edit_noted" if noted else "telegram.edit_too_late")
    text = edits.latest_edit(session, message) or message.text
    given = (
        commands.from_button(text, state.step, state.options)
        if message.kind == "button"
        else commands.from_text(text)
    )
    if given.reply:
        return Interpretation(reply=given.reply)
    return Interpretation(text=given.text, start=given.start)
