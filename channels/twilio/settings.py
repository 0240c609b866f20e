"""Twilio's settings (``GATEWAY_TWILIO_*``): the account that carries SMS and calls."""

from __future__ import annotations

from gateway.settings import PluginSettings, Secret, Settings


class TwilioSettings(PluginSettings):
    twilio_account_sid: str = ""  # checked by the plugin (AC + 32 hex digits)
    twilio_auth_token: Secret = ""
    twilio_api_base: str = "https://api.twilio.com"
    twilio_from_number: str = ""  # sender for replies when the inbound To number is unknown
    twilio_messaging_service_sid: str = ""
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
