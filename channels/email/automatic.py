"""Why no answer must go back to an incoming mail (answering makes mail loops): auto-replies,
bounces, mailing lists and no-reply senders, told by their headers and subject.

The first rule that matches gives the reason: Auto-Submitted (not "no"), X-Autoreply /
X-Autorespond / X-Auto-Response-Suppress (All, OOF), Precedence (bulk, junk, list,
auto_reply), List-Id / List-Unsubscribe, multipart/report, a no-reply sender (mailer-daemon,
postmaster, no-reply, noreply-xyz, do-not-reply, bounces+...), Return-Path "<>", an auto-reply
subject ("Réponse automatique", "Automatic reply", "Out of Office", "Auto:", "Absence" alone,
"Absence :", "Absence du bureau"; "Absence de bancs au parc" is a contribution).
"""

from __future__ import annotations

import re
from email.message import Message

from gateway.textnorm import fold

_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})
_NO_REPLY = re.compile(
    r"^(?:mailer-daemon|postmaster|no-?reply|do-?not-?reply|bounces?)(?:[-+._=].*)?$",
    re.IGNORECASE,
)
_AUTO_SUBJECT = re.compile(
    r"^(?:reponse automatique|automatic reply|auto[- ]?reply|out of (?:the )?office|auto:"
    r"|absente? du bureau"
    # "Absence" alone or "Absence : ..." / "Absence du bureau", but not "Absence de bancs".
    r"|absence(?:\s*$|\s*[:!(\[-]|\s+(?:du bureau|prolongee|jusqu)))",
)


def _token(value: str) -> str:
    return re.split(r"[;(\s]", value.strip(), maxsplit=1)[0].strip().lower()


def automatic_reason(
    headers: dict[str, list[str]], message: Message, sender: str, subject: str
) -> str | None:
    """Why no answer must go back, or None. The order is the brief's: the first rule wins."""
    submitted = [_token(v) for v in headers.get("auto-submitted", [])]
    if any(value and value != "no" for value in submitted):
        return "auto-submitted"
    for name in ("x-autoreply", "x-autorespond"):
        if any(_token(v) not in ("", "no", "false", "0") for v in headers.get(name, [])):
            return "auto-reply"
    for value in headers.get("x-auto-response-suppress", []):
        words = {w.lower() for w in re.split(r"[\s,;]+", value) if w}
        if words & {"all", "oof", "autoreply"}:
            return "auto-reply"
    for value in headers.get("precedence", []):
        if _token(value) in _PRECEDENCE:
            return f"precedence: {_token(value)}"
    if "list-id" in headers or "list-unsubscribe" in headers:
        return "mailing list"
    if message.get_content_type() == "multipart/report":
        return "bounce"
    local = sender.rpartition("@")[0] if sender else ""
    from_words = re.split(r"[\s<>@\"(),]+", " ".join(headers.get("from", [])[:1]))
    if _NO_REPLY.match(local) or (not sender and any(_NO_REPLY.match(w) for w in from_words)):
        return "no-reply sender"
    if any(re.sub(r"\s", "", v) == "<>" for v in headers.get("return-path", [])):
        return "null return path"
    if _AUTO_SUBJECT.match(fold(subject)):
        return "auto-reply subject"
    return None
