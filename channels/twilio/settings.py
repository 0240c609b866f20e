"""Twilio's settings (``GATEWAY_TWILIO_*``): the account that carries SMS and calls."""

from __future__ import annotations

from pydantic import Field

from gateway.settings import PluginSettings, Secret, Settings


class TwilioSettings(PluginSettings):
    twilio_account_sid: str = ""  # checked by the plugin (AC + 32 hex digits)
    twilio_auth_token: Secret = ""
    twilio_api_base: str = "https://api.twilio.com"
    twilio_from_number: str = ""  # sender for replies when the inbound To number is unknown
    twilio_messaging_service_sid: str = ""
    # Outbound pacing (gateway.pacing, docs/operations.md): SMS segments a second per sending
    # number (a long code: 1), or per Messaging Service when one is set. Raise it for a short
    # code or a Messaging Service with several numbers, to what Twilio gives the account.
    twilio_segments_per_second: float = Field(default=1.0, ge=0)
    # MMS media (channels/twilio/media.py): caps on what is downloaded, and where Twilio's
    # media URL may redirect to (its CDN, presigned URLs: no credentials are sent there).
    twilio_media_max_bytes: int = 5 * 1024 * 1024  # one photo or sound
    twilio_media_max_message_bytes: int = 10 * 1024 * 1024  # all of one message's media
    twilio_media_redirect_origins: str = (
        "https://mms.twiliocdn.com,https://s3-external-1.amazonaws.com"
    )

    @property
    def configured(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token)


def of(settings: Settings) -> TwilioSettings:
    return settings.section(TwilioSettings)
