"""Vonage's signed webhooks: only a fresh HS256 token signed with the signature secret, about
this very body, is believed (channels.vonage.signature)."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from channels.vonage import signature
from channels.vonage.signature import CLOCK_SKEW, MAX_AGE, Refused, sign, verify

SECRET = "a-signature-secret-long-enough-for-hs512-too-0123456789abcdefghij"
BODY = json.dumps({"channel": "sms", "text": "PARC Un banc"}).encode()
NOW = 1_800_000_000.0


def bearer(token: str) -> str:
    return f"Bearer {token}"


def test_a_token_signed_as_vonage_signs_is_believed():
    token = sign(BODY, SECRET, issued_at=NOW - 2, api_key="abcd1234", application_id="app")
    claims = verify(bearer(token), BODY, SECRET, now=NOW)
    assert claims["payload_hash"] == signature.payload_hash(BODY)
    assert claims["api_key"] == "abcd1234"


def test_vonage_sdk_verifies_our_token_the_same_way():
    # What vonage_jwt.verify_signature does: jwt.decode(token, secret, algorithms="HS256").
    token = sign(BODY, SECRET)
    assert jwt.decode(token, SECRET, algorithms="HS256")["iss"] == "Vonage"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer   ", "Basic YWJjOmRlZg=="])
def test_a_missing_token_is_refused(header: str | None):
    with pytest.raises(Refused):
        verify(header, BODY, SECRET, now=NOW)


def test_a_token_signed_with_another_secret_is_refused():
    token = sign(BODY, "someone-else's-secret-guessed-at-random", issued_at=NOW)
    with pytest.raises(Refused, match="does not verify"):
        verify(bearer(token), BODY, SECRET, now=NOW)


def test_a_stale_token_is_refused():
    token = sign(BODY, SECRET, issued_at=NOW - MAX_AGE - 1)
    with pytest.raises(Refused, match="stale"):
        verify(bearer(token), BODY, SECRET, now=NOW)
    # The edge of the window is still accepted.
    verify(bearer(sign(BODY, SECRET, issued_at=NOW - MAX_AGE)), BODY, SECRET, now=NOW)


def test_a_little_clock_skew_is_tolerated_but_not_a_token_from_the_future():
    verify(bearer(sign(BODY, SECRET, issued_at=NOW + CLOCK_SKEW)), BODY, SECRET, now=NOW)
    with pytest.raises(Refused, match="future"):
        verify(bearer(sign(BODY, SECRET, issued_at=NOW + CLOCK_SKEW + 5)), BODY, SECRET, now=NOW)


def test_the_body_changed_after_signing_is_refused():
    token = sign(BODY, SECRET, issued_at=NOW)
    changed = BODY.replace(b"PARC Un banc", b"PARC Deux bancs")
    with pytest.raises(Refused, match="payload_hash"):
        verify(bearer(token), changed, SECRET, now=NOW)


def test_a_token_without_iat_or_payload_hash_is_refused():
    no_iat = jwt.encode({"payload_hash": signature.payload_hash(BODY)}, SECRET, "HS256")
    with pytest.raises(Refused, match="iat"):
        verify(bearer(no_iat), BODY, SECRET, now=NOW)
    no_hash = jwt.encode({"iat": int(NOW)}, SECRET, "HS256")
    with pytest.raises(Refused, match="payload_hash"):
        verify(bearer(no_hash), BODY, SECRET, now=NOW)


def test_an_expired_token_is_refused():
    token = sign(BODY, SECRET, issued_at=time.time(), exp=int(time.time()) - CLOCK_SKEW - 5)
    with pytest.raises(Refused, match="expired"):
        verify(bearer(token), BODY, SECRET)


def _unsigned(claims: dict[str, object], alg: str) -> str:
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': alg, 'typ': 'JWT'})}.{part(claims)}."


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_an_unsigned_token_is_refused(alg: str):
    claims = {"iat": int(NOW), "payload_hash": signature.payload_hash(BODY)}
    with pytest.raises(Refused, match="algorithm"):
        verify(bearer(_unsigned(claims, alg)), BODY, SECRET, now=NOW)


def test_alg_none_as_pyjwt_writes_it_is_refused():
    token = sign(BODY, "", issued_at=NOW, algorithm="none")
    with pytest.raises(Refused, match="algorithm"):
        verify(bearer(token), BODY, SECRET, now=NOW)


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_another_hmac_with_the_right_secret_is_still_refused(alg: str):
    token = sign(BODY, SECRET, issued_at=NOW, algorithm=alg)
    with pytest.raises(Refused, match="algorithm"):
        verify(bearer(token), BODY, SECRET, now=NOW)


@pytest.mark.parametrize("token", ["not-a-jwt", "a.b.c", "....", "eyJ9.eyJ9.x"])
def test_garbage_is_refused(token: str):
    with pytest.raises(Refused):
        verify(bearer(token), BODY, SECRET, now=NOW)


def test_without_a_configured_secret_nothing_is_believed():
    token = sign(BODY, SECRET, issued_at=NOW)
    with pytest.raises(Refused, match="no signature secret"):
        verify(bearer(token), BODY, "", now=NOW)


def test_a_refusal_never_echoes_the_token_or_the_secret():
    token = sign(BODY, "wrong-secret-wrong-secret-wrong-secret", issued_at=NOW)
    with pytest.raises(Refused) as refused:
        verify(bearer(token), BODY, SECRET, now=NOW)
    assert token not in str(refused.value) and SECRET not in str(refused.value)
