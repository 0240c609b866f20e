"""Fixtures of the Vonage plugin's tests: the shared ones (real Redis, SQLite and PostgreSQL, the
base set-up's fake Twilio: tests/fixtures.py, registered by the root conftest), a fake Vonage
Messages API, and settings with both SMS providers configured (Twilio first in the registry, as
installed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from channels.vonage.tests.fake_api import FakeVonage
from gateway.settings import Settings

VONAGE_FROM = "+33100000007"


@pytest.fixture
def fake_vonage() -> Iterator[FakeVonage]:
    with FakeVonage() as fake:
        yield fake


@pytest.fixture
def settings(settings: Settings, fake_vonage: FakeVonage) -> Settings:
    """The shared settings (Twilio configured against its fake), with Vonage configured
    against its own."""
    return settings.with_overrides(
        vonage_api_key=fake_vonage.api_key,
        vonage_api_secret=fake_vonage.api_secret,
        vonage_signature_secret=fake_vonage.signature_secret,
        vonage_api_base=fake_vonage.base_url,
        vonage_from_number=VONAGE_FROM,
    )
