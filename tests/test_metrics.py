"""What an operator watches: /metrics scraped and parsed as Prometheus parses it, and /readyz's
reasons. The real app on SQLite and PostgreSQL with a real Redis; signed and forged Twilio
webhooks; a real Vosk transcription for the real-time factor."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis
from rq import Worker
from sqlalchemy import func, select

from channels.twilio.tests.fake_api import FakeTwilio
from channels.twilio.tests.test_voice_recordings import korean_model, speech_wav
from gateway import metrics, transcripts
from gateway.models import OutboundMessage
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.web import create_app
from gateway.webkeys import RUNTIME
from tests.console import seed
from tests.deadletter_kit import undeliverable
from tests.helpers import drain, runtime_with, sign, sms_form

__all__ = ["korean_model", "speech_wav"]  # fixtures used by name

PATH = "/webhooks/twilio/sms"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by name and labels, parsed by Prometheus's own parser."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def scrape(
    client: Any, **headers: str
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics", headers=headers)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return samples(await response.text())


async def texted(
    client: Any, settings: Settings, body: str, sender: str, forged: bool = False
) -> int:
    form = sms_form(body, sender=sender)
    signature = sign(settings.twilio_auth_token, settings.public_url + PATH, form)
    if forged:
        signature = signature[:-4] + "AAA="
    response = await client.post(PATH, data=form, headers={"X-Twilio-Signature": signature})
    return response.status


async def test_the_scrape_counts_webhooks_queues_dead_letters_and_the_backlog(
    aiohttp_client: Callable[..., Any], settings: Settings, fake_twilio: FakeTwilio
) -> None:
    client = await aiohttp_client(create_app(settings))
    rt: Runtime = client.app[RUNTIME]
    first = await client.get("/metrics")
    declared = {f.name for f in text_string_to_metric_families(await first.text())}
    # Every declared counter is described before its first event (a dashboard finds it).
    assert {f"gateway_{name}" for name in metrics.COUNTERS} <= declared
    before = await scrape(client)
    assert before[("gateway_moderation_backlog", (("campaign", "parc"),))] == 0
    assert before[("gateway_redis_up", ())] == 1 and before[("gateway_database_up", ())] == 1

    statuses = [
        await texted(client, settings, "PARC des bancs", f"+3361111000{n}") for n in range(3)
    ]
    statuses.append(await texted(client, settings, "PARC faux", "+33611110009", forged=True))
    statuses.append((await client.post("/webhooks/nowhere", data={"a": "b"})).status)
    assert statuses == [200, 200, 200, 403, 404]
    await asyncio.sleep(0.3)  # the batching ingest commits and enqueues
    during = await scrape(client)
    twilio_ok = ("gateway_webhook_requests_total", (("provider", "twilio"), ("status", "200")))
    assert during[twilio_ok] == 3
    forged = ("gateway_webhook_requests_total", (("provider", "twilio"), ("status", "403")))
    assert during[forged] == 1
    assert during[("gateway_webhook_signature_failures_total", (("provider", "twilio"),))] == 1
    # A path no route knows is "unknown", not whatever a scanner tried.
    unknown = ("gateway_webhook_requests_total", (("provider", "unknown"), ("status", "404")))
    assert during[unknown] == 1
    assert not any(("provider", "nowhere") in labels for _, labels in during)
    waiting = during[("gateway_queue_depth", (("queue", "inbound"),))]
    assert waiting >= 1  # no worker in this test: the messages wait
    assert during[("gateway_queue_oldest_job_age_seconds", (("queue", "inbound"),))] > 0
    assert during[("gateway_workers", ())] == 0

    await asyncio.to_thread(drain, rt)
    failed_id = await asyncio.to_thread(undeliverable, rt, fake_twilio, "+33622220000")
    metrics.flush(rt.redis)  # the drain ran jobs in this process, as a thread worker does
    after = await scrape(client)
    assert after[("gateway_queue_depth", (("queue", "inbound"),))] == 0
    assert after[("gateway_queue_oldest_job_age_seconds", (("queue", "inbound"),))] == 0
    assert after[("gateway_moderation_backlog", (("campaign", "parc"),))] == 3
    with rt.sessions() as session:
        dead = session.scalar(select(func.count()).where(OutboundMessage.status == "failed"))
    assert failed_id and dead >= 1
    assert after[("gateway_dead_letters", (("channel", "sms"),))] == dead
    # The three receipts went out; the undeliverable ones were refused for good.
    sent = ("gateway_outbound_sends_total", (("provider", "twilio"), ("result", "sent")))
    refused = ("gateway_outbound_sends_total", (("provider", "twilio"), ("result", "failed")))
    assert after[sent] >= 3 and after[refused] == dead
    # Counters are the installation's, in Redis: a second app (another web process) sees them.
    other = await aiohttp_client(create_app(settings))
    assert (await scrape(other))[twilio_ok] == 3
    # Nothing personal in a scrape: no number, no text.
    text = await (await client.get("/metrics")).text()
    assert "+336" not in text and "3361111" not in text and "bancs" not in text


async def test_only_the_machine_itself_or_the_token_may_scrape(
    aiohttp_client: Callable[..., Any], settings: Settings
) -> None:
    client = await aiohttp_client(create_app(settings))
    assert (await client.get("/metrics")).status == 200  # from 127.0.0.1
    proxied = await client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.7"})
    assert proxied.status == 403
    tokened = await aiohttp_client(
        create_app(settings.with_overrides(metrics_token="s3cret-t0ken"))
    )
    assert (await tokened.get("/metrics")).status == 403
    wrong = await tokened.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 403
    right = await tokened.get(
        "/metrics", headers={"Authorization": "Bearer s3cret-t0ken", "X-Forwarded-For": "x"}
    )
    assert right.status == 200


def test_the_access_rule() -> None:
    assert metrics.allowed("127.0.0.1", False, "", "")
    assert metrics.allowed("::1", False, "", "")
    assert not metrics.allowed("10.0.0.5", False, "", "")
    assert not metrics.allowed("127.0.0.1", True, "", "")
    assert not metrics.allowed(None, False, "", "")
    assert metrics.allowed("10.0.0.5", True, "Bearer tok", "tok")
    assert not metrics.allowed("127.0.0.1", False, "Bearer other", "tok")
    assert not metrics.allowed("127.0.0.1", False, "Basic tok", "tok")


async def test_readiness_names_what_is_missing(
    aiohttp_client: Callable[..., Any], settings: Settings
) -> None:
    client = await aiohttp_client(create_app(settings))
    rt: Runtime = client.app[RUNTIME]
    response = await client.get("/readyz")
    body = await response.json()
    assert response.status == 503
    assert body == {
        "status": "not ready",
        "database": "ok",
        "redis": "ok",
        "workers": "no worker alive: start `gateway worker`",
    }
    worker = Worker([rt.queue("inbound")], connection=rt.redis)
    worker.register_birth()
    try:
        response = await client.get("/readyz")
        assert response.status == 200
        assert await response.json() == {
            "status": "ready",
            "database": "ok",
            "redis": "ok",
            "workers": "ok",
        }
    finally:
        worker.register_death()


def test_readiness_when_redis_is_gone(settings: Settings, redis_server: Any) -> None:
    rt = runtime_with(settings, redis_url="redis://127.0.0.1:1/0")  # nothing listens on port 1
    try:
        state = metrics.readiness(rt)
    finally:
        rt.close()
    assert state["database"] == "ok"
    assert state["redis"].startswith("unreachable (")
    assert state["workers"] == "unknown: Redis is unreachable"


def test_a_tally_that_cannot_reach_redis_keeps_its_counts(settings: Settings) -> None:
    tally = metrics.Tally()
    tally.add("webhook_signature_failures", provider="vonage")
    tally.add("webhook_signature_failures", 2, provider="vonage")
    gone = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    assert tally.flush(gone) is False
    redis = Redis.from_url(settings.redis_url)
    assert tally.flush(redis) is True
    field = '["webhook_signature_failures", ["vonage"]]'
    assert float(redis.hget(metrics.COUNTERS_KEY, field) or 0) == 3
    assert tally.flush(redis) is True  # nothing pending: nothing added twice
    assert float(redis.hget(metrics.COUNTERS_KEY, field) or 0) == 3
    with pytest.raises(ValueError):
        tally.add("webhook_requests", provider="twilio")  # its status label is missing
    with pytest.raises(KeyError):
        tally.add("no_such_counter")


def test_tallies_from_many_threads_add_up(settings: Settings) -> None:
    tally = metrics.Tally()
    redis = Redis.from_url(settings.redis_url)

    def work() -> None:
        for _ in range(1000):
            tally.add("webhook_requests", provider="telegram", status="200")
            tally.flush(redis) if _ % 250 == 0 else None

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    tally.flush(redis)
    field = '["webhook_requests", ["telegram", "200"]]'
    assert float(redis.hget(metrics.COUNTERS_KEY, field) or 0) == 4000


def test_a_transcription_counts_its_audio_and_its_time(
    settings: Settings, speech_wav: bytes, korean_model: str
) -> None:
    rt = runtime_with(settings, vosk_model=korean_model)
    try:
        cid = seed.contribution(
            rt, "", channel="voice", audio=speech_wav, transcription_status="pending"
        )
        assert transcripts.transcribe_contribution(rt, cid) == "done"
        figures = samples(metrics.exposition(rt).decode())
    finally:
        rt.close()
    language = next(
        labels for name, labels in figures if name == "gateway_transcribed_audio_seconds_total"
    )
    audio = figures[("gateway_transcribed_audio_seconds_total", language)]
    spent = figures[("gateway_transcription_seconds_total", language)]
    assert 1 < audio < 10  # the espeak-ng phrase lasts a few seconds
    assert spent > 0


async def test_a_body_refused_by_its_cap_is_counted(
    aiohttp_client: Callable[..., Any], settings: Settings
) -> None:
    client = await aiohttp_client(create_app(settings))
    huge = {"Body": "x" * (settings.max_webhook_bytes + 1)}
    assert (await client.post(PATH, data=huge)).status == 413
    found = await scrape(client)
    assert (
        found[("gateway_webhook_requests_total", (("provider", "twilio"), ("status", "413")))] == 1
    )
