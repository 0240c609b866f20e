"""`gateway email …`: read the IMAP mailbox, run the SMTP receiver, or take one message from a
file or stdin (for a mail server's pipe transport, or to try a message locally).

All three store mail through the same path (channels.email.inbound.accept); the worker of
`gateway serve` or `gateway worker` then answers. `gateway serve` itself runs the receiver and
the poller when SMTP_RECEIVER_PORT and IMAP_HOST are set, so these commands are for setups that
keep them apart.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from typing import BinaryIO

import click

from channels.email.settings import of


@click.group("email")
def email_group() -> None:
    """Email: the IMAP mailbox, the SMTP receiver, one message by hand."""


@email_group.command("poll")
@click.option("--once", is_flag=True, help="One pass over the mailbox, then exit.")
def poll(once: bool) -> None:
    """Read the IMAP mailbox (IDLE when offered): each new message stored once, never deleted."""
    from channels.email import imap
    from gateway.cli.common import open_runtime, service_logging

    service_logging()
    runtime = open_runtime()
    if not of(runtime.settings).imap_host:
        runtime.close()
        raise click.ClickException("IMAP_HOST is not set")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        handled = imap.run(runtime, once=once, stop=stop)
    except imap.MailboxError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        runtime.close()
    click.echo(f"{handled} message(s) read")


@email_group.command("smtpd")
@click.option("--host", default=None, help="Default: SMTP_RECEIVER_HOST (127.0.0.1).")
@click.option("--port", type=int, default=None, help="Default: SMTP_RECEIVER_PORT, else 2525.")
def smtpd(host: str | None, port: int | None) -> None:
    """Receive mail for EMAIL_ADDRESS (and its plus addresses) by SMTP."""
    from channels.email import smtp_receiver
    from gateway.cli.common import open_runtime, service_logging

    service_logging()
    runtime = open_runtime()
    settings = of(runtime.settings)
    if not settings.email_address:
        runtime.close()
        raise click.ClickException("EMAIL_ADDRESS is not set: whose mail would it receive?")
    host = host or settings.smtp_receiver_host
    port = port or settings.smtp_receiver_port or 2525

    async def serve() -> None:
        server = await smtp_receiver.start(runtime, host, port)
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopped.set)
        click.echo(f"receiving mail for {settings.email_address} on {host}:{port}")
        await stopped.wait()
        server.close()
        await server.wait_closed()

    try:
        asyncio.run(serve())
    finally:
        runtime.close()


@email_group.command("receive")
@click.argument("source", type=click.File("rb"), default="-")
def receive(source: BinaryIO) -> None:
    """Store one raw message (RFC 5322) from a file or stdin, as if it had been received.

    Exit status for a mail server's pipe: 0 stored (or ignored on purpose), 75 (EX_TEMPFAIL)
    when the database is down, so that the server keeps the message and tries again."""
    from sqlalchemy.exc import SQLAlchemyError

    from channels.email.inbound import accept
    from gateway.cli.common import open_runtime

    raw = source.read()
    runtime = open_runtime()
    try:
        size = len(raw)
        if size > of(runtime.settings).email_max_bytes:
            raise click.ClickException(f"message of {size} bytes over EMAIL_MAX_BYTES")
        result = accept(runtime, raw)
    except SQLAlchemyError as exc:
        click.echo(f"database unavailable: {type(exc).__name__}", err=True)
        sys.exit(75)
    finally:
        runtime.close()
    click.echo(f"{result.outcome}{': ' + result.reason if result.reason else ''}")
