"""Phone numbers as the gateway uses them: which can receive an SMS, and which number a
caller's SMS (receipt, notices, answers) is sent from."""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import PhoneNumberType

from gateway import plugins
from gateway.models import Campaign
from gateway.settings import Settings

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
# Number types that cannot receive an SMS, from the number plan of each country (Google's
# libphonenumber data, shipped with the phonenumbers package: offline, France's overseas
# departments and every other country included). VOIP is among them: in France, 09 numbers
# are internet boxes' lines, which take calls, not texts.
_NO_SMS = frozenset(
    {
        PhoneNumberType.FIXED_LINE,
        PhoneNumberType.TOLL_FREE,
        PhoneNumberType.PREMIUM_RATE,
        PhoneNumberType.SHARED_COST,
        PhoneNumberType.VOIP,
        PhoneNumberType.UAN,
        PhoneNumberType.VOICEMAIL,
        PhoneNumberType.PAGER,
    }
)


def can_receive_sms(number: str) -> bool:
    """Whether an SMS can be sent to ``number``: an international (E.164) number whose type is
    not one that cannot (a landline, a toll-free or premium number, ...). Mobiles can, and so
    can numbers whose type the plan does not tell (the North American plan's "fixed line or
    mobile", a range too new for the data): there the provider decides, and a refusal is
    recorded by the outbound job. Short codes and alphanumeric senders cannot."""
    if not _E164.match(number):
        return False
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.number_type(parsed) not in _NO_SMS


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
