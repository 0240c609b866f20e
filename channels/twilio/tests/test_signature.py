"""Twilio's signature as ``channels.twilio.sms`` computes it, against the library's own."""

from __future__ import annotations

import pytest
from twilio.request_validator import RequestValidator

from channels.twilio import sms
from tests.helpers import sms_form
from tests.hostile_strings import PAYLOADS

TOKEN = "12345678901234567890123456789012"
URL = "https://agora.example.org/webhooks/twilio/sms"

FORMS: dict[str, dict[str, str]] = {
    "sms": sms_form("PARC Il faut plus de bancs"),
    "accents and emoji": sms_form("PARC Idée : des arbres 🌳, des bancs, l'été"),
    "empty body": sms_form(""),
    "no parameters": {},
    "media": {
        **sms_form("PARC photo"),
        "NumMedia": "2",
        "MediaUrl0": "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",
        "MediaContentType0": "image/jpeg",
        "MediaUrl1": "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME2",
        "MediaContentType1": "audio/ogg",
    },
    # Names whose order differs between a byte sort and a case-insensitive one.
    "case of names": {"body": "b", "Body": "B", "_x": "1", "a": "", "Z": "z"},
    **{f"hostile {name}": sms_form(text) for name, text in PAYLOADS.items()},
}


@pytest.mark.parametrize("form", FORMS.values(), ids=FORMS.keys())
@pytest.mark.parametrize(
    "url", [URL, URL + "?campaign=parc&x=%C3%A9", "https://agora.example.org:443/sms"]
)
def test_our_signature_is_the_libraries(form: dict[str, str], url: str) -> None:
    expected = RequestValidator(TOKEN).compute_signature(url, form)
    assert sms.compute_signature(TOKEN, url, form) == expected
    assert sms.signature_is_valid(TOKEN, url, form, expected)


@pytest.mark.parametrize("form", FORMS.values(), ids=FORMS.keys())
def test_another_token_value_or_url_does_not_pass(form: dict[str, str]) -> None:
    signature = RequestValidator(TOKEN).compute_signature(URL, form)
    assert not sms.signature_is_valid(TOKEN[::-1], URL, form, signature)
    assert not sms.signature_is_valid(TOKEN, URL + "/", form, signature)
    assert not sms.signature_is_valid(TOKEN, URL, {**form, "Extra": "1"}, signature)


def test_a_signature_made_with_the_explicit_port_still_passes() -> None:
    # Twilio sometimes signs https://host:443/...: the library's full check (our fallback)
    # tries the URL with and without the port.
    form = sms_form("PARC bonjour")
    with_port = "https://agora.example.org:443/webhooks/twilio/sms"
    signature = RequestValidator(TOKEN).compute_signature(with_port, form)
    assert sms.compute_signature(TOKEN, URL, form) != signature
    assert sms.signature_is_valid(TOKEN, URL, form, signature)


@pytest.mark.parametrize("signature", ["", "é" * 28, "bm90IGEgc2lnbmF0dXJl\x00"])
def test_a_malformed_signature_is_refused_without_an_error(signature: str) -> None:
    assert not sms.signature_is_valid(TOKEN, URL, sms_form("PARC bonjour"), signature)
