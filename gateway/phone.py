"""Phone numbers as the gateway uses them: which can receive an SMS, and which number a
caller's SMS (receipt, notices, answers) is sent from."""

from __future__ import annotations

import re

from gateway import plugins
from gateway.models import Campaign
from gateway.settings import Settings

# Numbers that can receive an SMS: French mobiles, and any other E.164 number (a provider refuses
# landlines with an error the outbound job records). French landlines and short codes: no.
_FRENCH_LANDLINE = re.compile(r"^\+33[1-59]\d{8}$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def can_receive_sms(number: str) -> bool:
    return bool(_E164.match(number)) and not _FRENCH_LANDLINE.match(number)


def sms_sender(settings: Settings, called: str | None, campaign: Campaign | None) -> str | None:
    """The number a caller's SMS (receipt, notices) comes from: the number they called when it
    can send SMS, else the campaign's first number that can, else the SMS plugin's default
    number. None when there is none (the provider then picks the sender, from a pool the city set
    up with it)."""
    numbers = [str(n) for n in campaign.phone_numbers or []] if campaign is not None else []
    candidates = [called, *numbers]
    for number in candidates:
        if number and can_receive_sms(number):
            return number
    default_from = plugins.hook("sms", "default_from")
    return default_from(settings) if default_from is not None else None
