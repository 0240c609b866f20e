"""Vonage: SMS through the Messages API, as one channel plugin (gateway.plugins); a second SMS
provider beside Twilio, in the same phone address space (one resident whichever they text)."""

from __future__ import annotations

from aiohttp import web

from channels.vonage.settings import VonageSettings, of
from gateway.messages import Sender
from gateway.pacing import Limit, Pace
from gateway.plugins import ChannelPlugin
from gateway.settings import Settings


def _sender(settings: Settings) -> Sender:
    from channels.vonage.sender import VonageSender

    vonage = of(settings)
    return VonageSender(vonage.vonage_api_key, vonage.vonage_api_secret, vonage.vonage_api_base)


def _routes(app: web.Application) -> None:
    from channels.vonage import webhooks

    app.router.add_post(webhooks.INBOUND_PATH, webhooks.inbound)
    app.router.add_post(webhooks.STATUS_PATH, webhooks.status)


def _default_from(settings: Settings) -> str | None:
    return of(settings).vonage_from_number or None


def _pace(settings: Settings) -> Pace:
    # Vonage: 30 API requests a second per account; a long virtual number sends about one
    # SMS a second.
    vonage = of(settings)
    return Pace(
        (
            Limit("sender", vonage.vonage_segments_per_second, "segment"),
            Limit("account", vonage.vonage_requests_per_second),
        )
    )


plugin = ChannelPlugin(
    name="vonage",
    channels=("sms",),
    settings=VonageSettings,
    configured=lambda settings: of(settings).configured,
    sender=_sender,
    routes=_routes,
    default_from=_default_from,
    address_spaces={"sms": "phone"},
    pace=_pace,
)
