"""`gateway residents …` and `gateway quarantine …`: what an operator does for one resident (a
request made at the town hall or by post) and with the messages set aside.

Residents: the same opt-out and erasure as a resident's own ``STOP`` and ``OUBLIER``, for the
person behind an address on every channel of that address (gateway.residents). The address is
asked for at a prompt (or read from standard input), so that it stays out of the shell's
history; it is never printed.

Quarantine: deliveries the database refused (kept whole, encrypted) and stored messages whose
processing failed in a way a retry cannot fix. Listing shows the reason, never the content;
``retry`` sends a stored message through the conversation again once the cause is fixed.
"""

from __future__ import annotations

import json
import sys

import click
from sqlalchemy import delete, select

from gateway import plugins

CHANNELS = plugins.channels()


@click.group("residents")
def residents_group() -> None:
    """A resident's own data, at their request: opt out, erase."""


def _address(given: str | None) -> str:
    if given == "-":
        return sys.stdin.readline().strip()
    if given:
        return given.strip()
    return str(click.prompt("Address (phone number, chat id or email)", hide_input=True)).strip()


@residents_group.command("forget")
@click.option("--channel", type=click.Choice(CHANNELS), required=True)
@click.option("--actor", default="cli", show_default=True, help="Who acts, for the log.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.argument("address", required=False)
def forget(channel: str, actor: str, yes: bool, address: str | None) -> None:
    """Erase a resident: their address, messages, calls, recordings and replies, on every
    channel of that address. Their contributions stay, detached. ADDRESS: - reads stdin;
    omitted, it is asked for."""
    from gateway import residents
    from gateway.cli.common import open_runtime

    value = _address(address)
    if not value:
        raise click.ClickException("no address given")
    if not yes:
        click.confirm("Erase this resident's data? This cannot be undone", abort=True)
    runtime = open_runtime()
    try:
        erased = residents.forget_address(runtime, channel, value, actor=f"cli:{actor}")
    finally:
        runtime.close()
    if not erased.contributors and not erased.messages and not erased.calls:
        click.echo("nothing known of this address: nothing erased")
        return
    click.echo(f"erased: {erased.summary()}")


@residents_group.command("opt-out")
@click.option("--channel", type=click.Choice(CHANNELS), required=True)
@click.option("--actor", default="cli", show_default=True, help="Who acts, for the log.")
@click.argument("address", required=False)
def opt_out(channel: str, actor: str, address: str | None) -> None:
    """Send nothing more to a resident, on every channel of that address."""
    from gateway import residents
    from gateway.cli.common import open_runtime

    value = _address(address)
    if not value:
        raise click.ClickException("no address given")
    runtime = open_runtime()
    try:
        changed = residents.opt_out_address(runtime, channel, value, actor=f"cli:{actor}")
    finally:
        runtime.close()
    click.echo(f"opted out ({changed} row(s) changed)")


@click.group("quarantine")
def quarantine_group() -> None:
    """Messages set aside: refused by the database, or failing when processed."""


@quarantine_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def quarantine_list(as_json: bool) -> None:
    """What is in quarantine, with the reasons (never the content)."""
    from gateway.cli.common import open_runtime
    from gateway.models import InboundMessage, QuarantinedMessage

    runtime = open_runtime(redis=False)
    try:
        with runtime.sessions() as session:
            items = [
                {
                    "id": f"m{m.id}",
                    "kind": "stored message",
                    "channel": m.channel,
                    "received_at": m.received_at.isoformat(),
                    "reason": m.error or "",
                }
                for m in session.scalars(
                    select(InboundMessage)
                    .where(InboundMessage.state == "quarantined")
                    .order_by(InboundMessage.id)
                )
            ] + [
                {
                    "id": f"q{q.id}",
                    "kind": "refused delivery",
                    "channel": q.channel,
                    "received_at": q.received_at.isoformat(),
                    "reason": q.reason,
                }
                for q in session.scalars(select(QuarantinedMessage).order_by(QuarantinedMessage.id))
            ]
    finally:
        runtime.close()
    if as_json:
        click.echo(json.dumps(items, ensure_ascii=False, indent=2))
        return
    if not items:
        click.echo("quarantine is empty")
    for item in items:
        click.echo(
            f"{item['id']:>8}  {item['channel']:<9} {item['received_at'][:19]}  "
            f"{item['kind']}: {item['reason']}"
        )


def _parse(item_id: str) -> tuple[str, int]:
    if len(item_id) < 2 or item_id[0] not in "mq" or not item_id[1:].isdigit():
        raise click.BadParameter("an id as `gateway quarantine list` shows it: m12 or q3")
    return item_id[0], int(item_id[1:])


@quarantine_group.command("retry")
@click.argument("item_id")
def quarantine_retry(item_id: str) -> None:
    """Process a quarantined stored message again (m<id>), once its cause is fixed."""
    from gateway import enqueue
    from gateway.cli.common import open_runtime
    from gateway.models import InboundMessage

    kind, number = _parse(item_id)
    if kind != "m":
        raise click.ClickException(
            "a refused delivery cannot be retried as it is: the database refused its data"
        )
    runtime = open_runtime()
    try:
        with runtime.sessions.begin() as session:
            message = session.get(InboundMessage, number)
            if message is None or message.state != "quarantined":
                raise click.ClickException(f"{item_id} is not in quarantine")
            message.state, message.attempts = "received", 0
            channel = message.channel
        queued = enqueue.inbound(runtime, [(number, channel)])
    finally:
        runtime.close()
    click.echo(f"{item_id} queued again" if queued else f"{item_id} left for the sweeper")


@quarantine_group.command("delete")
@click.argument("item_id")
def quarantine_delete(item_id: str) -> None:
    """Delete a refused delivery (q<id>) for good, or give up a stored message (m<id>)."""
    from gateway.cli.common import open_runtime
    from gateway.models import InboundMessage, QuarantinedMessage

    kind, number = _parse(item_id)
    runtime = open_runtime(redis=False)
    try:
        with runtime.sessions.begin() as session:
            if kind == "q":
                count = session.execute(
                    delete(QuarantinedMessage).where(QuarantinedMessage.id == number)
                ).rowcount  # type: ignore[attr-defined]
            else:
                message = session.get(InboundMessage, number)
                count = 0
                if message is not None and message.state == "quarantined":
                    message.state, count = "failed", 1
    finally:
        runtime.close()
    if not count:
        raise click.ClickException(f"{item_id} is not in quarantine")
    click.echo(f"{item_id} deleted" if kind == "q" else f"{item_id} given up (state failed)")
