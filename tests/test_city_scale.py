"""The city-scale recipe of docs/deploy.md, as it runs: two `gateway serve` and two `gateway
worker` processes on one PostgreSQL database and one Debian redis-server (separate processes,
real TCP on loopback), residents texting through both web processes, some deliveries doubled
across them, and a SIGTERM to everything at the end (issue 17, item 4).

Why here, beside tests/test_e2e_serve.py, and not in tests/faults/: nothing is broken on
purpose. The fault suite asks what happens when a part fails; this file proves the set-up
docs/deploy.md tells a city to run, working. It borrows the fault suite's ``Stack`` (the
processes of the ``postgresql-redis`` set-up and a database engine on them).

What it checks, from the database and from the fake Twilio (never from the gateway's own
account of it):
- one contribution per message that files one (counted by MessageSid through the
  contribution's inbound message), none for the others, in the right campaign, with the
  neighbourhood the resident answered (so each resident's messages were taken in order,
  whichever web process stored them and whichever worker ran them);
- one inbound row per MessageSid, processed, although some were delivered to both web
  processes at the same moment;
- every reply sent exactly once: each message the fake accepted is one outbound row, each
  contribution's reference is in exactly one SMS, to its resident, and each resident got as
  many receipts as they filed contributions;
- both workers did work: RQ's own per-worker count of finished jobs (``successful_job_count``
  in the worker's Redis hash), matched to each process by its pid; the only workers Redis
  knows are these two (`gateway serve` on a city's Redis runs none). RQ hands each job to
  whichever worker asks first, so the split cannot be forced; with about a hundred jobs
  arriving faster than one worker runs them (each in a forked child) an idle worker is the
  fault this catches, and it cannot pass with one;
- SIGTERM to all four at once: each process gone within 10 s with exit status 0, and the
  workers unregistered from Redis.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
import requests
from redis import Redis
from rq import Queue
from sqlalchemy import select

from channels.twilio.tests.fake_api import FakeTwilio
from gateway.models import Campaign, Contribution, InboundMessage, OutboundMessage
from gateway.queues import QUEUES
from tests.faults.serve_kit import CAMPAIGN_NUMBER, POSTGRESQL, Stack, at_once
from tests.fixtures import RedisServer, free_port, throwaway_postgres
from tests.helpers import sms_form

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

RESIDENTS = 12
STOP_WITHIN = 10.0  # what an operator can count on (docs/operations.md)
# Deadlines, not timings: CI's 2 cores are busy with the rest of the suite (four processes
# took about 20 s to start, and a burst about 15 s to drain, on this machine under load).
START_WITHIN = 120.0
SETTLE_WITHIN = 180.0
REFERENCE = re.compile(r"\b[A-Z]+-\d{4,}\b")
PARC_NEIGHBOURHOODS = ["Parc Nord", "Parc Sud", "Centre", "Université"]  # tests/campaigns

IDEAS = [
    "des bancs à l'ombre près de l'aire de jeux",
    "un terrain de basket éclairé le soir",
    "plus de poubelles le long du canal",
    "une fontaine à eau à l'entrée nord",
    "un jardin partagé pour les écoles",
    "des toilettes publiques ouvertes le dimanche",
    "une piste cyclable jusqu'à la gare",
    "des arbres fruitiers au lieu du gazon",
    "un kiosque pour les concerts de l'été",
    "moins de voitures devant le collège",
    "des tables de pique-nique couvertes",
    "un éclairage doux sur le chemin du lac",
]


@dataclass(frozen=True)
class Sms:
    """One message of a resident's conversation, and what it should leave behind."""

    sid: str
    sender: str
    body: str
    files: tuple[str, str] | None = None  # (campaign, text) of the contribution it files
    neighbourhood: str | None = None  # the answer to the question about the one just filed
    double: bool = False  # delivered to both web processes at the same moment


def conversations(run: str) -> list[list[Sms]]:
    """Each resident's messages, in the order they write them. Three kinds of resident:
    a keyword, then a neighbourhood number, then another campaign's keyword; no keyword (the
    number they texted names the campaign), a neighbourhood name, then a closed campaign's
    keyword (answered, files nothing); a keyword, another keyword, then 0 (no neighbourhood)."""
    residents: list[list[Sms]] = []
    for i in range(RESIDENTS):
        sender = f"+3366{i:07d}"
        idea, other = IDEAS[i % len(IDEAS)], IDEAS[(i + 5) % len(IDEAS)]
        texts: list[tuple[str, tuple[str, str] | None, str | None]]
        if i % 3 == 0:
            texts = [
                (f"PARC {idea}", ("parc", idea), None),
                ("2", None, PARC_NEIGHBOURHOODS[1]),
                (f"BUDGET {other}", ("budget", other), None),
            ]
        elif i % 3 == 1:
            texts = [
                (idea.capitalize(), ("parc", idea.capitalize()), None),
                ("Centre", None, "Centre"),
                ("ECOLE les horaires du mercredi sont trop chargés", None, None),
            ]
        else:
            texts = [
                (f"BUDGET {other}", ("budget", other), None),
                (f"Parc {idea}", ("parc", idea), None),
                ("0", None, None),
            ]
        residents.append(
            [
                Sms(
                    sid=f"SM{run}{i:04x}{k:020x}",
                    sender=sender,
                    body=body,
                    files=files,
                    neighbourhood=neighbourhood,
                    double=(i + k) % 3 == 0,
                )
                for k, (body, files, neighbourhood) in enumerate(texts)
            ]
        )
    return residents


class Deliveries:
    """Signed webhooks to the web processes, and their answers, per web process."""

    def __init__(self, stack: Stack, urls: list[str]) -> None:
        self.stack = stack
        self.urls = urls
        self.answered: Counter[str] = Counter()  # url -> deliveries answered 200 with TwiML
        self.refused: list[str] = []
        self._lock = threading.Lock()

    def deliver(self, sms: Sms, url: str) -> None:
        form = sms_form(sms.body, sender=sms.sender, to=CAMPAIGN_NUMBER, sid=sms.sid)
        response = self.stack.gateway.post_sms(form, 60, url)
        with self._lock:
            if response.status_code == 200 and "<Response></Response>" in response.text:
                self.answered[url] += 1
            else:
                self.refused.append(f"{sms.sid}: {response.status_code} {response.text[:200]}")

    def conversation(self, index: int, messages: list[Sms]) -> None:
        """A resident writes one message after the other (each stored before the next is
        sent, as a phone sends them); a doubled one goes to both web processes at once, as a
        provider's retry races its first delivery behind a load balancer."""
        for k, sms in enumerate(messages):
            if sms.double:
                at_once([partial(self.deliver, sms, url) for url in self.urls])
            else:
                self.deliver(sms, self.urls[(index + k) % len(self.urls)])


@dataclass
class Outcome:
    """What the database and the fake provider hold."""

    inbound: dict[str, list[str]]  # MessageSid -> the states of its inbound rows
    filed: dict[str, list[tuple[str, str, str, str | None]]]  # MessageSid -> contributions
    receipts: Counter[int]  # contribution id -> its receipt rows
    outbound: list[tuple[str, str | None, str | None]]  # status, message key, provider sid
    sent: list[dict[str, str]]  # what the fake Twilio accepted

    @property
    def contributions(self) -> int:
        return sum(len(found) for found in self.filed.values())


def look(stack: Stack) -> Outcome:
    with stack.engine.connect() as connection:
        inbound: dict[str, list[str]] = {}
        for sid, state in connection.execute(
            select(InboundMessage.provider_message_id, InboundMessage.state)
        ):
            inbound.setdefault(str(sid), []).append(state)
        filed: dict[str, list[tuple[str, str, str, str | None]]] = {}
        for sid, slug, reference, text, neighbourhood in connection.execute(
            select(
                InboundMessage.provider_message_id,
                Campaign.slug,
                Contribution.reference,
                Contribution.text,
                Contribution.neighbourhood,
            )
            .select_from(Contribution)
            .outerjoin(InboundMessage, Contribution.inbound_message_id == InboundMessage.id)
            .outerjoin(Campaign, Contribution.campaign_id == Campaign.id)
        ):
            filed.setdefault(str(sid), []).append((slug, reference, text, neighbourhood))
        receipts: Counter[int] = Counter()
        outbound: list[tuple[str, str | None, str | None]] = []
        for status, key, provider_sid, contribution_id in connection.execute(
            select(
                OutboundMessage.status,
                OutboundMessage.message_key,
                OutboundMessage.provider_message_id,
                OutboundMessage.contribution_id,
            )
        ):
            outbound.append((status, key, provider_sid))
            if key is not None and key.startswith("receipt.") and contribution_id is not None:
                receipts[contribution_id] += 1
    return Outcome(inbound, filed, receipts, outbound, list(stack.fake.messages))


def drained(stack: Stack, redis: Redis, outcome: Outcome, expected: int, sids: set[str]) -> bool:
    """Every message stored and processed, every contribution filed, every reply sent and
    accepted by the fake, and nothing left in RQ's queues or running."""
    queues = [Queue(name, connection=redis) for name in QUEUES]
    queues_empty = all(q.count == 0 and q.started_job_registry.count == 0 for q in queues)
    return (
        queues_empty
        and set(outcome.inbound) >= sids
        and all(states == ["processed"] for states in outcome.inbound.values())
        and outcome.contributions >= expected
        and bool(outcome.outbound)
        and all(status not in ("queued", "sending") for status, _, _ in outcome.outbound)
        and len(outcome.sent) >= len(outcome.outbound)
    )


def finished_jobs(redis: Redis, pids: list[int]) -> dict[int, int]:
    """RQ's count of the jobs each worker process finished (its Redis hash, while it runs);
    a process that reconnected to Redis registered again under a new name, same pid."""
    done = dict.fromkeys(pids, 0)
    for name in redis.smembers("rq:workers"):
        worker = redis.hgetall(name)
        pid = int(worker.get(b"pid", b"0"))
        assert pid in done, f"a worker no test process runs: {worker.get(b'hostname')!r} {pid}"
        done[pid] += int(worker.get(b"successful_job_count", b"0"))
    return done


def named(process: subprocess.Popen[bytes]) -> str:
    """`serve (pid 1234)`: which gateway command a process runs."""
    return f"{' '.join(map(str, process.args[3:]))} (pid {process.pid})"  # type: ignore[index]


def terminate(processes: list[subprocess.Popen[bytes]]) -> dict[str, float | None]:
    """SIGTERM to every process at once; the seconds each took to exit (None: it did not
    within STOP_WITHIN, and was killed)."""
    signalled = time.monotonic()
    for process in processes:
        process.send_signal(signal.SIGTERM)
    took: dict[str, float | None] = {}
    while len(took) < len(processes) and time.monotonic() - signalled < STOP_WITHIN:
        for process in processes:
            name = named(process)
            if name not in took and process.poll() is not None:
                took[name] = time.monotonic() - signalled
        time.sleep(0.02)
    for process in processes:
        name = named(process)
        if name not in took:
            took[name] = None
            process.kill()
            process.wait(10)
    return took


@pytest.fixture
def city(tmp_path: Path, postgres_admin_url: str) -> Iterator[tuple[Stack, RedisServer]]:
    """The ``postgresql-redis`` set-up on a database and a redis-server of this test's own,
    nothing started yet."""
    (tmp_path / "redis-server").mkdir()
    redis = RedisServer(tmp_path / "redis-server")
    redis.start()
    try:
        with FakeTwilio() as fake, throwaway_postgres(postgres_admin_url, "agora_city") as url:
            stack = Stack(POSTGRESQL, tmp_path, fake, database_url=url, redis=redis)
            try:
                yield stack, redis
            finally:
                stack.stop()
    finally:
        redis.stop()


def test_two_web_and_two_worker_processes_file_each_message_once_and_reply_once(
    city: tuple[Stack, RedisServer],
):
    stack, server = city
    gateway = stack.gateway
    gateway.cli("db", "upgrade")
    redis = Redis.from_url(server.url, socket_timeout=5)
    # All four at once, as `systemctl enable --now` starts them (docs/deploy.md): on a new
    # database both web processes load the campaign folder at the same moment.
    port = free_port()
    webs = [
        gateway.start("serve"),
        gateway.start("serve", env=dict(gateway.env, GATEWAY_PORT=str(port))),
    ]
    workers = [gateway.start("worker"), gateway.start("worker")]
    urls = [gateway.url, f"http://127.0.0.1:{port}"]
    worker_pids = [w.pid for w in workers]

    def healthy(url: str) -> bool:
        with contextlib.suppress(requests.RequestException):
            return requests.get(url + "/healthz", timeout=2).status_code == 200
        return False

    def registered() -> set[int]:
        return {int(redis.hget(n, "pid") or 0) for n in redis.smembers("rq:workers")}

    deadline = time.monotonic() + START_WITHIN
    while not (all(healthy(u) for u in urls) and registered() == set(worker_pids)):
        exited = {named(p): p.returncode for p in [*webs, *workers] if p.poll() is not None}
        assert not exited, f"exited while starting: {exited}\n{gateway.logs()}"
        assert time.monotonic() < deadline, f"not up in {START_WITHIN:.0f} s:\n{gateway.logs()}"
        time.sleep(0.2)

    run = uuid.uuid4().hex[:8]
    residents = conversations(run)
    messages = [sms for conversation in residents for sms in conversation]
    sids = {sms.sid for sms in messages}
    filing = [sms for sms in messages if sms.files is not None]
    deliveries = Deliveries(stack, urls)
    with ThreadPoolExecutor(max_workers=RESIDENTS) as pool:
        for future in [pool.submit(deliveries.conversation, i, c) for i, c in enumerate(residents)]:
            future.result()

    doubles = sum(sms.double for sms in messages)
    assert not deliveries.refused, deliveries.refused
    assert sum(deliveries.answered.values()) == len(messages) + doubles
    assert all(deliveries.answered[url] >= len(messages) // 3 for url in urls), deliveries.answered

    deadline = time.monotonic() + SETTLE_WITHIN
    outcome = look(stack)
    while not drained(stack, redis, outcome, len(filing), sids):
        assert time.monotonic() < deadline, f"not drained: {outcome}\n{gateway.logs()}"
        time.sleep(0.5)
        outcome = look(stack)
    time.sleep(3)  # a doubled job, a second receipt, would show now
    outcome = look(stack)
    jobs = finished_jobs(redis, worker_pids)

    # One inbound row per MessageSid, processed; one contribution per message that files one.
    assert outcome.inbound == {sid: ["processed"] for sid in sids}
    assert set(outcome.filed) == {sms.sid for sms in filing}, outcome.filed
    wrong: dict[str, object] = {}
    neighbourhood_of: dict[str, str | None] = {}
    for conversation in residents:
        last_filed: str | None = None
        for sms in conversation:
            if sms.files is not None:
                last_filed = sms.sid
                neighbourhood_of[sms.sid] = None
                found = outcome.filed[sms.sid]
                if [(slug, text) for slug, _, text, _ in found] != [sms.files]:
                    wrong[sms.sid] = found
            elif sms.neighbourhood is not None:
                assert last_filed is not None
                neighbourhood_of[last_filed] = sms.neighbourhood
    assert not wrong, f"filed other than once, or not as written: {wrong}"
    neighbourhoods = {sid: found[0][3] for sid, found in outcome.filed.items()}
    assert neighbourhoods == neighbourhood_of
    references = {found[0][1]: sid for sid, found in outcome.filed.items()}
    assert len(references) == len(filing)
    assert all(
        ref.startswith(outcome.filed[sid][0][0].upper() + "-") for ref, sid in references.items()
    )

    # Every reply sent once: each row sent, each accepted message one row.
    assert all(status == "sent" for status, _, _ in outcome.outbound), outcome.outbound
    provider_sids = [sid for _, _, sid in outcome.outbound]
    accepted = [m["sid"] for m in outcome.sent]
    assert len(set(accepted)) == len(accepted) == len(outcome.sent)
    assert sorted(str(s) for s in provider_sids) == sorted(accepted), "a row sent twice or never"
    # One receipt per contribution: one row, one SMS quoting the reference, to its resident.
    assert sorted(outcome.receipts.values()) == [1] * len(filing)
    sender_of = {sms.sid: sms.sender for sms in messages}
    quoting: dict[str, list[str]] = {}
    for message in outcome.sent:
        for ref in set(REFERENCE.findall(message["Body"])):
            quoting.setdefault(ref, []).append(message["To"])
    assert quoting == {ref: [sender_of[sid]] for ref, sid in references.items()}
    per_resident = Counter(sender_of[sid] for sid in references.values())
    assert Counter(to for tos in quoting.values() for to in tos) == per_resident
    assert {m["From"] for m in outcome.sent} == {CAMPAIGN_NUMBER}
    # The closed campaign's keyword was answered (once), and filed nothing.
    closed = [k for _, k, _ in outcome.outbound if k == "campaign.closed"]
    assert len(closed) == sum(sms.body.startswith("ECOLE") for sms in messages)

    # Both workers worked.
    assert all(n > 0 for n in jobs.values()), f"jobs finished per worker pid: {jobs}"

    # SIGTERM to all four at once, as `systemctl stop` does.
    took = terminate([*webs, *workers])
    late = {name: t for name, t in took.items() if t is None or t >= STOP_WITHIN}
    assert not late, f"still running {STOP_WITHIN:.0f} s after SIGTERM: {late}\n{gateway.logs()}"
    codes = {named(p): p.returncode for p in [*webs, *workers]}
    assert set(codes.values()) == {0}, f"exit statuses: {codes}\n{gateway.logs()}"
    assert redis.smembers("rq:workers") == set(), "a worker left its registration behind"
    logs = {p.name: p.read_text(errors="replace") for p in gateway.workdir.glob("*.log")}
    assert not [name for name, text in logs.items() if "Traceback" in text], gateway.logs()
    # Nobody died: recovery must not have taken back a job a live worker had just taken
    # (workers.recovery.owner; it did, during a fork, before the fix).
    taken_back = [name for name, text in logs.items() if "no longer exists" in text]
    assert not taken_back, gateway.logs()
