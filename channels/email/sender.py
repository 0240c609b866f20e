"""Replies by email: SMTP (STARTTLS or TLS, with authentication), threaded to the resident's
message, plain text with a clean HTML alternative.

Headers are built with the standard library's ``EmailMessage`` under the SMTP policy, which
refuses a line break inside a header: whatever a resident wrote (a subject carrying
``\\r\\nBcc: …``) cannot add a header. Anything the resident wrote that ends up in a header (the
subject, the Message-IDs to thread on) is also cleaned first (one line, a length cap, Message-IDs
reduced to their legal characters).

Receipts and notices carry ``Auto-Submitted: auto-replied`` (RFC 3834), so that the resident's
out-of-office does not answer them; a moderator's own answer does not.
"""

from __future__ import annotations

import html
import re
import smtplib
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from channels.email.settings import of
from gateway.i18n import translate
from gateway.messages import OutgoingText, SendError
from gateway.settings import Settings

_MSGID = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.@\-]")
# Written by a person: a moderator's reply, the city's answer (gateway.moderation.answers).
HUMAN_KEYS = frozenset(
    {
        "outcome.answer",
        *(f"answer.notice.{s}" for s in ("evaluating", "accepted", "rejected", "done")),
    }
)


def clean_msgid(value: str) -> str:
    value = _MSGID.sub("", value)[:250]
    return value if "@" in value else ""


def one_line(value: str, limit: int = 200) -> str:
    return " ".join(value.split())[:limit]


def html_body(text: str) -> str:
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    inner = "\n".join(
        "<p>" + "<br>\n".join(html.escape(line) for line in p.splitlines()) + "</p>"
        for p in paragraphs
    )
    return (
        '<!DOCTYPE html>\n<html lang="fr"><head><meta charset="utf-8"></head>\n'
        '<body style="font-family: sans-serif; line-height: 1.5; max-width: 40em">\n'
        f"{inner}\n</body></html>\n"
    )


def build(
    message: OutgoingText,
    *,
    from_address: str,
    from_name: str,
    message_key: str | None = None,
    language: str = "fr",
) -> EmailMessage:
    thread: Mapping[str, Any] = message.thread or {}
    mail = EmailMessage()
    local, _, domain = from_address.partition("@")
    mail["From"] = Address(display_name=one_line(from_name, 80), username=local, domain=domain)
    mail["To"] = one_line(message.recipient, 320)
    subject = one_line(str(thread.get("subject") or ""))
    if subject:
        if not subject.lower().startswith(("re:", "re :")):
            subject = f"Re: {subject}"
    else:
        subject = translate("email.subject", language, organisation=one_line(from_name, 80))
    mail["Subject"] = subject
    mail["Date"] = format_datetime(datetime.now(UTC))
    # Every attempt at one outbound row has the same Message-ID (its token): a send resent
    # after an interrupted attempt is one message to the resident's client (workers.outbound).
    mail["Message-ID"] = (
        f"<agora.out.{re.sub(r'[^0-9A-Za-z.]', '', message.token)}@{domain}>"
        if message.token and domain
        else make_msgid("agora.out", domain=domain or None)
    )
    parent = clean_msgid(str(thread.get("in_reply_to") or ""))
    references = [clean_msgid(str(r)) for r in thread.get("references") or []]
    references = [r for r in references if r][-10:]
    if parent:
        mail["In-Reply-To"] = f"<{parent}>"
        if parent not in references:
            references.append(parent)
    if references:
        mail["References"] = " ".join(f"<{r}>" for r in references)
    if message_key not in HUMAN_KEYS:
        mail["Auto-Submitted"] = "auto-replied"
    mail.set_content(message.text, cte="quoted-printable")
    mail.add_alternative(html_body(message.text), subtype="html", cte="quoted-printable")
    return mail


class EmailSender:
    name = "smtp"

    def __init__(self, settings: Settings, timeout: float = 30) -> None:
        self.settings = of(settings)
        self.organisation = settings.organisation
        self.timeout = timeout

    def _context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if self.settings.smtp_ca_file:
            context.load_verify_locations(cafile=self.settings.smtp_ca_file)
        return context

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.smtp_security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                s.smtp_host, s.smtp_port, timeout=self.timeout, context=self._context()
            )
        else:
            client = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=self.timeout)
            if s.smtp_security == "starttls":
                client.starttls(context=self._context())
            elif s.smtp_security != "none":
                raise SendError(f"SMTP_SECURITY {s.smtp_security!r} is unknown", retryable=False)
        if s.smtp_user:
            client.login(s.smtp_user, s.smtp_password)
        return client

    def send(self, message: OutgoingText) -> str:
        s = self.settings
        if not s.email_address:
            raise SendError("EMAIL_ADDRESS is not set: no sender address", retryable=False)
        try:
            mail = build(
                message,
                from_address=s.email_address,
                from_name=self.organisation,
                message_key=message.key,
            )
        except (ValueError, TypeError) as exc:  # an address the policy refuses
            raise SendError(f"email not built: {exc}", retryable=False) from exc
        try:
            with self._connect() as client:
                client.send_message(mail, from_addr=s.email_address, to_addrs=[message.recipient])
        except smtplib.SMTPRecipientsRefused as exc:
            # At RCPT TO: greylisting (450, 451) is answered there, and is temporary.
            codes = [code for code, _ in exc.recipients.values()]
            temporary = bool(codes) and all(400 <= code < 500 for code in codes)
            raise SendError(
                f"SMTP: recipient refused ({', '.join(map(str, codes))})",
                retryable=temporary,
                code=codes[0] if codes else None,
            ) from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise SendError(
                f"SMTP: authentication failed ({exc.smtp_code})", retryable=False
            ) from exc
        except smtplib.SMTPResponseException as exc:
            temporary = 400 <= exc.smtp_code < 500
            raise SendError(
                f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", retryable=temporary, code=exc.smtp_code
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise SendError(
                f"SMTP unreachable: {type(exc).__name__}: {exc}", retryable=True
            ) from exc
        return str(mail["Message-ID"]).strip("<>")
