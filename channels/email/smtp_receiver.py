"""The gateway's own SMTP receiver (aiosmtpd), for local use or for a mail server that forwards
the campaign's address to it.

It accepts mail for the gateway's address only (``EMAIL_ADDRESS`` and its plus addresses:
``participez+parc@…``), refuses anything else at RCPT (550: it is not an open relay), refuses
messages over ``EMAIL_MAX_BYTES`` (552, from aiosmtpd), and answers 250 only once the message is
stored; if the database is down it answers 451 so that the sending server tries again later.
Run it with ``gateway email smtpd``, or inside ``gateway serve`` with ``SMTP_RECEIVER_PORT``.
It speaks plain SMTP: put it on loopback or behind the city's mail server, which does TLS,
spam filtering and authentication of the outside world.

Whether the sender is who the ``From:`` says is decided here, where the connection is known
(channels.email.authentication): the Authentication-Results of a trusted relay
(``SMTP_RECEIVER_TRUSTED_RELAYS`` and ``EMAIL_AUTHSERV_ID``), else the receiver's own DKIM,
SPF (the peer's address, MAIL FROM and HELO) and DMARC check. Unverified mail is still
accepted and stored: moderators see it, flagged, and nothing is sent back.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy.exc import SQLAlchemyError

from channels.email.authentication import SmtpPeer
from channels.email.inbound import accept, ours
from channels.email.settings import of
from gateway import outages

log = logging.getLogger(__name__)


class Handler:
    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if not ours(address, of(self.runtime.settings).email_address):
            log.info("smtp receiver: recipient refused (not the gateway's address)")
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        peer = SmtpPeer(
            ip=str(session.peer[0]) if isinstance(session.peer, tuple) else "",
            helo=session.host_name or "",
            mail_from=envelope.mail_from or "",
        )
        loop = asyncio.get_running_loop()
        try:
            # In a thread: DNS look-ups and DKIM hashing would otherwise hold the event loop.
            result = await loop.run_in_executor(
                None,
                lambda: accept(self.runtime, raw, envelope_to=tuple(envelope.rcpt_tos), peer=peer),
            )
        except SQLAlchemyError as exc:
            outages.note("smtp receiver", exc)  # logged once per incident
            return "451 4.3.0 Storage unavailable, please try again later"
        except Exception:
            log.exception("smtp receiver: message could not be read")
            return "451 4.3.0 Temporary failure, please try again later"
        log.info("smtp receiver: %s %s", result.outcome, result.reason)
        return "250 2.0.0 OK"


def make_protocol(runtime: Any) -> SMTP:
    settings = of(runtime.settings)
    return SMTP(
        Handler(runtime),
        data_size_limit=settings.email_max_bytes,
        enable_SMTPUTF8=True,
        decode_data=False,
        ident="Agora gateway",
    )


async def start(runtime: Any, host: str, port: int) -> asyncio.AbstractServer:
    """Listen on (host, port); returns the server (close it to stop)."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: make_protocol(runtime), host=host, port=port)
    log.info("smtp receiver listening on %s:%d", host, port)
    return server
