"""What a channel plugin gives the registry-driven harness (tests/test_channel_contract.py): its
test kit, ``channels/<provider>/tests/kit.py``, a module whose ``KIT`` is a ``ChannelKit``.

The harness runs, for every plugin in ``gateway.plugins.installed()`` (a registered plugin
without a kit fails it), the same four checks:

a. each of the plugin's fixtures (``channels/<provider>/fixtures/*.json``), signed and delivered
   through the plugin's real entry point, is accepted and stores the expected normalised
   message (or none, when ``expected`` is null);
b. a forged and a missing signature are refused as ``KIT.refusal`` says: ``Refused(status)``,
   nothing stored, for a webhook; ``FiledUnverified()`` for an entry point that cannot refuse
   (mail: the SMTP receiver takes every message for the gateway's address), where the mail is
   stored, filed as a contribution whose sender is not verified, and never answered;
c. the same delivery twice is stored once and, after the inbound job ran, is one contribution;
d. the reply to a message is rendered for the medium, as the provider's fake received it.

A new plugin gets these checks by registering (channels/registry.py) and writing its kit.

The fixture format, one for every provider (``load_fixtures``)::

    {
      "description": "...", "source": "where the payload's shape comes from (the docs)",
      "request": {
        "path": "/webhooks/<provider>/...",        # the webhook, with its query; absent for mail
        "content_type": "application/x-www-form-urlencoded" | "application/json" | ...,
        "form": {...} | "json": {...} | "body": "the raw text",   # exactly one
        "envelope": {"mail_from": ..., "rcpt_to": [...]}          # mail only
      },
      "expected": {"channel", "provider_message_id", "sender", "recipient", "text",
                   "attachments", and optionally "kind", "provider_ref"}
                  | null                                 # the request stores no message
    }

A fixture's request is what the provider sends *before* it is authenticated: the kit's
``Bench.sign`` adds the signature (a header; for mail, the Authentication-Results of the city's
mail server). Email fixtures embed the raw RFC 5322 message as a string with LF line ends (the
kit sends it with CRLF), so that every provider's fixtures are one kind of file; the larger
corpus of ``.eml`` files stays with the email tests (channels/email/tests/corpus).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

from aiohttp.test_utils import TestClient

from gateway.runtime import Runtime
from gateway.settings import Settings


@dataclass(frozen=True)
class Request:
    """A delivery from the provider: an HTTP request to a webhook (``path``), or a raw mail
    (``envelope``). ``form`` and ``json`` keep the decoded payload that ``body`` encodes (a
    form signature covers the fields; a plugin keeps them as the raw payload)."""

    content_type: str
    body: bytes
    path: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    form: Mapping[str, str] | None = None
    json: Any = None
    envelope: Mapping[str, Any] | None = None

    def with_headers(self, **headers: str) -> Request:
        return replace(self, headers={**self.headers, **headers})


@dataclass(frozen=True)
class Fixture:
    name: str
    request: Request
    expected: Mapping[str, Any] | None  # the normalised message stored; None: none is


class Signing(enum.Enum):
    VALID = "valid"
    FORGED = "forged"  # signed, but not with the secret the gateway holds
    MISSING = "missing"  # not signed at all


@dataclass(frozen=True)
class Refused:
    """A webhook refuses what it cannot authenticate with ``status`` (401 or 403, as the plugin
    documents) and stores nothing."""

    status: int


@dataclass(frozen=True)
class FiledUnverified:
    """An entry point that cannot refuse (the SMTP receiver takes every mail for the gateway's
    address): a delivery whose sender fails authentication is stored, filed as a contribution
    with ``sender_verified`` false, and nothing is sent back."""


@dataclass(frozen=True)
class Gateway:
    """The gateway under test: the aiohttp app of ``gateway.web.create_app`` behind a test
    client, and its runtime (the database and queues the app stores into)."""

    client: TestClient[Any, Any]
    runtime: Runtime


class Bench(Protocol):
    """One test's set-up of a plugin: its fake provider running, the plugin configured."""

    settings: Settings  # the base settings with this plugin configured against its fake

    def sign(self, request: Request, signing: Signing) -> Request:
        """The request as the provider sends it, validly signed, forged, or unsigned."""
        ...

    async def deliver(self, gateway: Gateway, request: Request) -> int:
        """Deliver through the plugin's real entry point (a webhook on ``gateway.client``, or
        the mail receiver on ``gateway.runtime``); the status it answered, HTTP or SMTP (2xx
        is success in both)."""
        ...

    def replies(self) -> list[Any]:
        """Everything the provider's fake received as messages to residents, in order."""
        ...

    def check_reply(self, fixture: Fixture) -> None:
        """Assert that the fake received the reply to ``fixture``'s message rendered for the
        medium (numbered choices in an SMS, an inline keyboard on Telegram, a threaded mail)."""
        ...


@dataclass(frozen=True)
class ChannelKit:
    plugin: str  # the registered plugin's name (gateway.plugins.ChannelPlugin.name)
    fixtures: Sequence[Fixture]
    refusal: Refused | FiledUnverified
    contribution: str  # a fixture that files one contribution at once (a campaign keyword)
    question: str  # a fixture answered with a reply the medium renders (choices, a thread)
    open: Callable[[Settings], AbstractContextManager[Bench]]  # start the fake, configure
    # The resident of the ``contribution`` fixture writing ``text`` (the n-th time: a new
    # provider id), and the text of one of ``Bench.replies()``: the language switch on every
    # channel (tests/test_language_switch.py).
    writes: Callable[[Fixture, str, int], Request]
    reply_text: Callable[[Any], str]

    def fixture(self, name: str) -> Fixture:
        (found,) = [f for f in self.fixtures if f.name == name]
        return found


def load_fixtures(directory: Path) -> tuple[Fixture, ...]:
    """A provider's fixtures (the format above), sorted by name."""
    found = []
    for path in sorted(directory.glob("*.json")):
        case = json.loads(path.read_text(encoding="utf-8"))
        found.append(Fixture(path.stem, request_of(case["request"]), case["expected"]))
    return tuple(found)


def request_of(spec: Mapping[str, Any]) -> Request:
    given = [k for k in ("form", "json", "body") if k in spec]
    if len(given) != 1:
        raise ValueError(f"a fixture's request has exactly one of form, json, body: {given}")
    content_type = spec["content_type"]
    if "form" in spec:
        form = {str(k): str(v) for k, v in spec["form"].items()}
        return Request(content_type, urlencode(form).encode(), spec.get("path"), form=form)
    if "json" in spec:
        body = json.dumps(spec["json"], ensure_ascii=False).encode()
        return Request(content_type, body, spec.get("path"), json=spec["json"])
    return Request(
        content_type, spec["body"].encode(), spec.get("path"), envelope=spec.get("envelope")
    )


async def post(gateway: Gateway, request: Request) -> int:
    """A webhook delivery: the request posted as is to its path on the app."""
    assert request.path is not None, "a webhook fixture names its path"
    response = await gateway.client.post(
        request.path,
        data=request.body,
        headers={"Content-Type": request.content_type, **request.headers},
    )
    await response.read()
    return response.status
