"""Email (IMAP or an SMTP receiver in, SMTP out), as one channel plugin (gateway.plugins)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import click

from channels.email.settings import EmailSettings, of
from gateway.messages import OutgoingText, Sender
from gateway.models import InboundMessage
from gateway.pacing import Limit, Pace
from gateway.plugins import Arrival, ChannelPlugin, Interpretation, Service, Stop
from gateway.runtime import Runtime
from gateway.settings import Settings

log = logging.getLogger(__name__)


def _sender(settings: Settings) -> Sender:
    from channels.email.sender import EmailSender

    return EmailSender(settings)


def _commands() -> Sequence[click.Command]:
    from channels.email.cli import email_group

    return (email_group,)


def _interpret(arrival: Arrival) -> Interpretation:
    """Routing (the campaign from the address or the subject), automatic senders repeating
    themselves (not answered), and whether the sender is who they say (channels.email)."""
    from channels.email import routing

    message = arrival.message
    meta = routing.meta(arrival.runtime.vault, message)
    if routing.answering_a_loop(arrival.session, message, meta):
        log.info("email %d: an automatic sender repeating itself; not answered", message.id)
        return Interpretation(handled=True)
    text = routing.text_for(
        message.text, meta.get("subject") or "", message.recipient, arrival.campaigns
    )
    verified = routing.sender_verified(meta)
    if not verified:
        log.info("email %d: sender not verified: filed for moderators, unanswered", message.id)
    return Interpretation(text=text, verified=verified)


def _thread(runtime: Runtime, message: InboundMessage) -> dict[str, Any] | None:
    """A reply threads on the resident's message: its subject, In-Reply-To, References.
    None once the message is erased or unreadable."""
    from channels.email import routing

    meta = routing.meta(runtime.vault, message)
    if not meta:
        return None
    return {
        "subject": meta.get("subject") or "",
        "in_reply_to": meta.get("message_id") or "",
        "references": [*(meta.get("references") or []), meta.get("message_id") or ""],
    }


async def _start_receiver(runtime: Runtime) -> Stop:
    from channels.email import smtp_receiver

    settings = of(runtime.settings)
    server = await smtp_receiver.start(
        runtime, settings.smtp_receiver_host, settings.smtp_receiver_port
    )

    async def stop() -> None:
        server.close()
        await server.wait_closed()

    return stop


async def _start_poller(runtime: Runtime) -> Stop:
    from channels.email import imap

    stopping = threading.Event()
    poller = threading.Thread(
        target=imap.run, args=(runtime,), kwargs={"stop": stopping}, name="imap", daemon=True
    )
    poller.start()

    async def stop() -> None:
        stopping.set()
        await asyncio.get_running_loop().run_in_executor(None, poller.join, 10)

    return stop


def _reconcile(runtime: Runtime, message: OutgoingText, since: datetime) -> list[str]:
    """A mail server keeps no list to ask: an interrupted send is sent again, with the same
    Message-ID (channels.email.sender.build), so that a copy the server had already taken is
    recognisably the same message to the resident's client (which shows or drops it as one)."""
    return []


plugin = ChannelPlugin(
    name="email",
    channels=("email",),
    settings=EmailSettings,
    configured=lambda settings: of(settings).configured,
    sender=_sender,
    commands=_commands,
    interpret=_interpret,
    thread=_thread,
    reconcile=_reconcile,
    services=(
        # SMTP_RECEIVER_PORT > 0: mail is received by the gateway itself.
        Service("smtp-receiver", lambda s: of(s).smtp_receiver_port > 0, _start_receiver),
        # IMAP_HOST set: the city's mailbox is read (IDLE when offered).
        Service("imap-poller", lambda s: bool(of(s).imap_host), _start_poller),
    ),
    # Mail servers throttle bursts from one sender (ANNOUNCEMENT_RATE slows announcements
    # further).
    pace=lambda settings: Pace((Limit("sender", of(settings).smtp_messages_per_second),)),
)
