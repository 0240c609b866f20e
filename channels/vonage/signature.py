"""Vonage's signed webhooks (Messages API): the token in ``Authorization: Bearer``.

Every inbound message and status webhook of the Messages API carries a JWT signed with HS256
and the account's *signature secret* (not the API secret). Its claims include ``iat`` (when
Vonage signed it), ``jti``, ``iss`` ("Vonage"), ``api_key``, ``application_id`` and
``payload_hash``: the SHA-256, in hex, of the request body. We check, in this order:

1. a bearer token is there;
2. it is HS256 (nothing else is accepted: not ``none``, not another HMAC, not RSA with the
   secret as a "public key") and its signature verifies with the signature secret;
3. ``iat`` is present, not more than ``CLOCK_SKEW`` seconds in the future and not more than
   ``MAX_AGE`` seconds old: a token copied from one request cannot be replayed later;
   ``exp``, if Vonage ever adds one, is honoured by PyJWT with the same skew;
4. ``payload_hash`` equals the SHA-256 of the body we received, so the signed token cannot be
   replayed with another body within the window either.

Sources: https://developer.vonage.com/en/messages/concepts/signed-webhooks (the claims, SHA-256,
the signature secret), Vonage's own check in vonage-python-sdk ``vonage_jwt.verify_signature``
(``jwt.decode(token, signature_secret, algorithms='HS256')``), and the validation Vonage's
advocates describe (iat checked for staleness, payload_hash against the body).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any

import jwt

ALGORITHM = "HS256"
# How old a token may be when it reaches us: Vonage signs when it sends (a retry is signed
# anew), so five minutes covers the network and a slow queue on their side.
MAX_AGE = 5 * 60
# How far our clock may be behind Vonage's: a token "from the future" by up to this much is
# accepted (NTP keeps servers within a second or two; 30 s leaves room for a drifting VM).
CLOCK_SKEW = 30


class Refused(ValueError):
    """The request is not provably from Vonage; the message says why (no secret, no address)."""


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Refused("no Authorization header")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Refused("Authorization is not a bearer token")
    return token.strip()


def payload_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def verify(
    authorization: str | None, body: bytes, secret: str, now: float | None = None
) -> Mapping[str, Any]:
    """The token's claims, once it is proven to be Vonage's, fresh and about this body;
    ``Refused`` otherwise."""
    if not secret:
        raise Refused("no signature secret configured")
    token = bearer_token(authorization)
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as exc:
        raise Refused(f"malformed token ({type(exc).__name__})") from exc
    if header.get("alg") != ALGORITHM:
        raise Refused(f"token algorithm {str(header.get('alg'))[:10]!r} is not {ALGORITHM}")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            # iat is checked below against `now` (PyJWT's own check has no "too old");
            # exp, when present, is PyJWT's to check.
            options={"require": ["iat", "payload_hash"], "verify_iat": False},
            leeway=CLOCK_SKEW,
        )
    except jwt.InvalidSignatureError as exc:
        raise Refused("signature does not verify with the signature secret") from exc
    except jwt.ExpiredSignatureError as exc:
        raise Refused("token expired") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise Refused(f"token has no {exc.claim} claim") from exc
    except jwt.InvalidTokenError as exc:
        raise Refused(f"invalid token ({type(exc).__name__})") from exc
    issued = claims["iat"]
    if isinstance(issued, bool) or not isinstance(issued, int | float):
        raise Refused("iat is not a timestamp")
    age = (time.time() if now is None else now) - issued
    if age < -CLOCK_SKEW:
        raise Refused(f"token issued {-age:.0f} s in the future")
    if age > MAX_AGE:
        raise Refused(f"stale token: issued {age:.0f} s ago (more than {MAX_AGE} s)")
    claimed = claims["payload_hash"]
    if not isinstance(claimed, str) or not hmac.compare_digest(claimed.lower(), payload_hash(body)):
        raise Refused("body does not match the token's payload_hash")
    return claims


def sign(
    body: bytes,
    secret: str,
    *,
    issued_at: float | None = None,
    algorithm: str = ALGORITHM,
    **claims: Any,
) -> str:
    """A token as Vonage makes it, for tests and local tools (``Authorization: Bearer …``)."""
    payload: dict[str, Any] = {
        "iat": int(time.time() if issued_at is None else issued_at),
        "jti": hashlib.sha256(body + str(time.time_ns()).encode()).hexdigest()[:36],
        "iss": "Vonage",
        "payload_hash": payload_hash(body),
        **claims,
    }
    # PyJWT writes an unsigned token ("none") only without a key.
    return jwt.encode(payload, secret if algorithm != "none" else None, algorithm=algorithm)  # type: ignore[arg-type]
