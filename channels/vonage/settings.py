"""Vonage's settings (``GATEWAY_VONAGE_*``): the account whose Messages API carries SMS."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, model_validator

from gateway.settings import PluginSettings, Secret, Settings, SettingsError, is_loopback

_NUMBER = re.compile(r"\+?([1-9]\d{6,14})")


def _api_base(value: str) -> str:
    # The API key and secret travel to this URL with every SMS: never in clear beyond this
    # machine (http only to a loopback host: the tests' fake Messages API).
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError(
            f"must be the API's root URL, such as https://api.nexmo.com, not {value!r}"
        )
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError(
            "must use https: the API secret would cross the network in clear (http is allowed "
            "only to a loopback host, for tests)"
        )
    return value.rstrip("/")


def _number(value: str) -> str:
    # Written either way (Vonage's dashboard shows 33100000001), kept as the gateway writes
    # numbers: +33100000001.
    value = value.strip()
    if not value:
        return value
    found = _NUMBER.fullmatch(value.replace(" ", ""))
    if found is None:
        raise ValueError(f"must be a phone number in international form, not {value!r}")
    return "+" + found.group(1)


# What makes the plugin configured: the account (to send) and the signature secret (to
# believe its webhooks).
REQUIRED = ("vonage_api_key", "vonage_api_secret", "vonage_signature_secret")


class VonageSettings(PluginSettings):
    vonage_api_key: str = ""  # Dashboard > API settings
    vonage_api_secret: Secret = ""
    # Signs the Messages API's webhooks (JWT, HS256): Dashboard > API settings > Signature
    # secret. Without it every Vonage webhook is refused.
    vonage_signature_secret: Secret = ""
    vonage_api_base: Annotated[str, AfterValidator(_api_base)] = "https://api.nexmo.com"
    # The number replies come from when the resident's message does not say (E.164).
    vonage_from_number: Annotated[str, AfterValidator(_number)] = ""
    # Outbound pacing (gateway.pacing, docs/operations.md): SMS segments a second per sending
    # number (a long virtual number: 1), and API requests a second for the account (30).
    vonage_segments_per_second: float = Field(default=1.0, ge=0)
    vonage_requests_per_second: float = Field(default=30.0, ge=0)

    @property
    def configured(self) -> bool:
        return all(getattr(self, name) for name in REQUIRED)

    @model_validator(mode="after")
    def _all_or_nothing(self) -> VonageSettings:
        # Half a configuration fails quietly otherwise: without the signature secret every
        # webhook is refused, without the API secret no reply leaves.
        missing = [name for name in REQUIRED if not getattr(self, name)]
        if 0 < len(missing) < len(REQUIRED):
            raise SettingsError(
                "Vonage is half configured: set "
                + ", ".join(f"GATEWAY_{name.upper()}" for name in missing)
                + " too (Dashboard > API settings), or none of "
                + ", ".join(f"GATEWAY_{name.upper()}" for name in REQUIRED)
            )
        return self


def of(settings: Settings) -> VonageSettings:
    return settings.section(VonageSettings)
