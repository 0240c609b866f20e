"""Which numbers can receive an SMS (gateway.phone): decided from each number's type in its
country's number plan (libphonenumber's data), so that foreign and overseas numbers are
handled as French ones are."""

from __future__ import annotations

import pytest

from gateway.phone import can_receive_sms


@pytest.mark.parametrize(
    ("number", "why"),
    [
        ("+33612345678", "a French mobile (06)"),
        ("+33756123456", "a French mobile (07)"),
        ("+262692123456", "a mobile in La Réunion"),
        ("+590690123456", "a mobile in Guadeloupe"),
        ("+594694123456", "a mobile in French Guiana"),
        ("+447911123456", "a British mobile"),
        ("+32470123456", "a Belgian mobile"),
        ("+4915123456789", "a German mobile"),
        ("+12015550123", "the North American plan cannot tell: the provider decides"),
        ("+33712345678", "a range the data does not know: the provider decides"),
    ],
)
def test_a_mobile_or_a_number_of_unknown_type_can(number: str, why: str):
    assert can_receive_sms(number), why


@pytest.mark.parametrize(
    ("number", "why"),
    [
        ("+33144444444", "a landline in Paris (01)"),
        ("+33240123456", "a landline in Nantes (02)"),
        ("+33147000001", "a landline in Nanterre"),
        ("+33912345678", "an internet box's line (09)"),
        ("+262262123456", "a landline in La Réunion"),
        ("+442071838750", "a landline in London"),
        ("+3222123456", "a landline in Brussels"),
        ("+18005550199", "a toll-free number"),
        ("+33899123456", "a premium-rate number"),
        ("36179", "a short code"),
        ("VINTED", "an alphanumeric sender"),
        ("0612345678", "not international: whose country?"),
        ("+33 6 12 34 56 78", "not E.164 as providers send it"),
        ("", "no number"),
    ],
)
def test_a_landline_or_what_is_not_a_number_cannot(number: str, why: str):
    assert not can_receive_sms(number), why
