"""bench/burst.py as a smoke test, on both set-ups: a small burst (10 callers, 40 texts, 6
Telegram updates and 4 emails in half a minute) against `gateway serve` and two `gateway
worker` processes. It asserts what the benchmark exists to show, nothing lost and nothing
doubled, and never a time (the figures are in docs/benchmarks.md). Smaller than `--quick` (50
callers, 200 texts in a minute): on the shared 2-core machine, with other suites running, the
quick profile's voice messages were still queued after its ten minutes of waiting (the default
and transcription queues wait for inbound and outbound ones: docs/benchmarks.md)."""

from __future__ import annotations

from collections import Counter

import pytest

from bench import burst

pytestmark = pytest.mark.e2e


SMOKE = {"callers": 10, "texts": 40, "telegram": 6, "emails": 4, "minutes": 0.5}


def check(report: burst.Report) -> None:
    arrivals = Counter(a.channel for a in report.arrivals)
    assert arrivals == {"sms": 40, "voice": 10, "telegram": 6, "email": 4}
    # Every delivery was acknowledged (200; 250 for mail), every call step answered.
    assert report.acknowledged == len(report.arrivals), report.statuses
    assert set(report.statuses) <= {
        ("sms", 200),
        ("voice", 200),
        ("voice call steps", 200),
        ("telegram", 200),
        ("email", 250),
    }, report.statuses
    assert report.lost == []
    assert report.unfinished == []
    assert report.duplicates == []
    # Each text had its receipt handed to its provider, once; each recording its transcript.
    for channel in ("sms", "telegram", "email"):
        assert len(report.receipts[channel]) == arrivals[channel], channel
    assert report.transcripts_not_done == 0
    assert len(report.transcripts) == arrivals["voice"]
    assert report.unmatched_sends == 0  # every send found at the fake provider
    assert report.ok


def test_quick_burst_on_sqlite():
    check(burst.run(burst.Options(database="sqlite", **SMOKE)))


@pytest.mark.postgres
def test_quick_burst_on_postgresql(postgres_admin_url: str):
    options = burst.Options(database="postgresql", postgres_admin_url=postgres_admin_url)
    check(burst.run(burst.Options(**{**options.__dict__, **SMOKE})))
