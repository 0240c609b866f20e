"""Retention: what is past its period goes, exactly that, and the public sees no difference.

Data of every kind, dated in the past against a fixed clock, on SQLite and PostgreSQL, a real
Redis for the daily lock; the public page and open data are fetched through the real web app
before and after, and must be byte-identical.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect, select, update

from gateway import retention
from gateway.audio_cache import cache_dir
from gateway.locks import hold
from gateway.models import (
    Callback,
    Campaign,
    Contribution,
    Contributor,
    Conversation,
    InboundMessage,
    OutboundMessage,
    QuarantinedMessage,
    VoiceCall,
)
from gateway.privacy import contributor_address, inbound_raw, inbound_sender
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.web import create_app
from tests.helpers import cli_env
from tests.speech import tone

HEARD = "RET-heard"
GENERATED = re.compile(rb'"generated_at": "[^"]*"')
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
TABLES = (
    Campaign,
    Contributor,
    Contribution,
    InboundMessage,
    OutboundMessage,
    Callback,
    Conversation,
    QuarantinedMessage,
    VoiceCall,
)


def _file(data: Path, relative: str, content: bytes | None = None) -> str:
    path = data / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content or b"content of " + relative.encode())
    return relative


def _photo(path: str, *, public: bool) -> dict[str, Any]:
    return {
        "kind": "photo",
        "path": path,
        "content_type": "image/jpeg",
        "size": 10,
        "name": "p.jpg",
        "public": public,
    }


def build(runtime: Runtime) -> dict[str, int]:
    """Every kind of row, some past their period and some not; returns ids by name."""
    vault = runtime.vault
    data = runtime.settings.data_path
    ids: dict[str, int] = {}
    with runtime.sessions.begin() as session:
        ecoles = session.scalar(select(Campaign).where(Campaign.slug == "ecoles"))
        parc = session.scalar(select(Campaign).where(Campaign.slug == "parc"))
        assert ecoles is not None and parc is not None and ecoles.status == "closed"
        session.execute(
            update(Campaign).where(Campaign.id == ecoles.id).values(updated_at=NOW - 100 * DAY)
        )

        def person(name: str, address: str, **extra: Any) -> Contributor:
            address_hash = vault.lookup_hash("sms", address)
            row = Contributor(
                public_id=f"c-{name}",
                channel="sms",
                address_hash=address_hash,
                address_encrypted=vault.encrypt(address, contributor_address("sms", address_hash)),
                created_at=NOW - 200 * DAY,
                **extra,
            )
            session.add(row)
            session.flush()
            ids[name] = row.id
            return row

        done = person("done", "+33611111111")  # only a closed campaign: address goes
        busy = person("busy", "+33622222222")  # also in an open campaign: stays
        info = person("info", "+33633333333", announcements=True)  # asked for news: stays
        stop = person("stop", "+33644444444", opted_out=True, opted_out_at=NOW - 150 * DAY)
        recent = person("recent", "+33655555555")  # wrote 10 days ago: stays

        def contribution(name: str, campaign: Campaign, who: Contributor, **extra: Any) -> None:
            row = Contribution(
                reference=f"RET-{name}",
                campaign_id=campaign.id,
                contributor_id=who.id,
                channel=extra.pop("channel", "sms"),
                status=extra.pop("status", "published"),
                text=f"texte {name}",
                received_at=extra.pop("received_at", NOW - 120 * DAY),
                moderated_at=extra.pop("moderated_at", NOW - 110 * DAY),
                **extra,
            )
            session.add(row)
            session.flush()
            ids[name] = row.id

        contribution(
            "heard",
            ecoles,
            done,
            channel="voice",
            audio_path=_file(data, "audio/heard.wav", tone(2)),
            broadcast_consent=True,
            transcript="texte heard",
        )
        contribution(
            "private_voice",
            ecoles,
            done,
            channel="voice",
            audio_path=_file(data, "audio/private.wav"),
            broadcast_consent=None,
            transcript="texte private",
        )
        contribution(
            "photos",
            ecoles,
            busy,
            attachments=[
                _photo(_file(data, "media/public.jpg"), public=True),
                _photo(_file(data, "media/private.jpg"), public=False),
                {"kind": "text", "path": _file(data, "texts/long.txt"), "name": "t.txt"},
            ],
        )
        contribution("busy_open", parc, busy, status="pending", received_at=NOW - 100 * DAY)
        contribution("info_old", ecoles, info)
        contribution("stop_old", ecoles, stop)
        contribution("recent_old", ecoles, recent)
        contribution(
            "spam",
            parc,
            busy,
            status="spam",
            moderated_at=NOW - 40 * DAY,
            received_at=NOW - 41 * DAY,
            attachments=[_photo(_file(data, "media/spam.jpg"), public=False)],
        )
        contribution(
            "fresh_reject",
            parc,
            busy,
            status="rejected",
            moderated_at=NOW - 5 * DAY,
            received_at=NOW - 6 * DAY,
            attachments=[_photo(_file(data, "media/fresh.jpg"), public=False)],
        )
        contribution(
            "open_voice",
            parc,
            busy,
            channel="voice",
            status="pending",
            received_at=NOW - 40 * DAY,
            audio_path=_file(data, "audio/open.wav"),
        )

        def message(name: str, who: Contributor, days: float, state: str = "processed") -> None:
            provider_id = f"SM{name}"
            row = InboundMessage(
                channel="sms",
                provider_message_id=provider_id,
                sender_hash=who.address_hash,
                sender_encrypted=vault.encrypt("+336", inbound_sender("sms", provider_id)),
                raw_encrypted=vault.encrypt("{}", inbound_raw("sms", provider_id)),
                text=f"message {name}",
                received_at=NOW - days * DAY,
                state=state,
            )
            session.add(row)
            session.flush()
            ids[name] = row.id

        message("old_message", done, 100)
        message("waiting_message", busy, 40, state="received")
        message("new_message", recent, 10)

        def reply(name: str, who: Contributor, days: float, status: str) -> None:
            row = OutboundMessage(
                decision_key=f"reply-{name}",
                channel="sms",
                contributor_id=who.id,
                recipient_encrypted=b"x" * 40,
                text=f"reponse {name}",
                status=status,
                created_at=NOW - days * DAY,
            )
            session.add(row)
            session.flush()
            ids[name] = row.id

        reply("old_reply", done, 40, "sent")
        reply("old_failed", done, 40, "failed")
        reply("new_reply", busy, 5, "sent")
        reply("queued_reply", busy, 40, "queued")

        for name, status, days in (("old_callback", "done", 40), ("queued_callback", "queued", 40)):
            row_cb = Callback(
                decision_key=f"cb-{name}",
                contributor_id=busy.id,
                text="votre contribution",
                status=status,
                created_at=NOW - days * DAY,
                finished_at=NOW - days * DAY if status == "done" else None,
                log=[],
            )
            session.add(row_cb)
            session.flush()
            ids[name] = row_cb.id

        for name, who, step, days in (
            ("idle_conversation", done, "idle", 40),
            ("fresh_conversation", busy, "idle", 2),
            ("active_conversation", recent, "neighbourhood", 40),
        ):
            conv = Conversation(
                contributor_id=who.id,
                channel="sms",
                step=step,
                state={"campaign": "parc"},
                updated_at=NOW - days * DAY,
            )
            session.add(conv)
            session.flush()
            ids[name] = conv.id

        for name, days in (("old_quarantine", 40), ("new_quarantine", 3)):
            q = QuarantinedMessage(
                channel="sms",
                provider_key=name,
                sender_hash=done.address_hash,
                reason="too long",
                payload_encrypted=b"y" * 40,
                received_at=NOW - days * DAY,
                quarantined_at=NOW - days * DAY,
            )
            session.add(q)
            session.flush()
            ids[name] = q.id

        for name, age in (("old_call", 3 * DAY), ("live_call", timedelta(hours=1))):
            call = VoiceCall(
                call_sid=f"CA{name}", caller_hash=done.address_hash, started_at=NOW - age
            )
            session.add(call)
            session.flush()
            ids[name] = call.id
    return ids


def snapshot(runtime: Runtime) -> dict[str, Any]:
    """Every row of every table concerned, and every file of the data folder."""
    rows: dict[str, Any] = {}
    with runtime.sessions() as session:
        for model in TABLES:
            columns = [c.key for c in inspect(model).column_attrs]
            rows[model.__tablename__] = sorted(
                repr([getattr(row, c) for c in columns]) for row in session.scalars(select(model))
            )
    data = runtime.settings.data_path
    rows["files"] = sorted(
        str(p.relative_to(data))
        for p in data.rglob("*")
        if p.is_file() and not p.name.startswith("gateway.sqlite3") and p.suffix != ".key"
    )
    return rows


async def public_outputs(client: Any) -> dict[str, bytes]:
    pages = {}
    for slug in ("ecoles", "parc"):
        for path in (
            f"/campaigns/{slug}",
            f"/campaigns/{slug}/contributions.csv",
            f"/campaigns/{slug}/contributions.json",
            f"/campaigns/{slug}/podcast.xml",
        ):
            response = await client.get(path)
            assert response.status == 200, path
            # The one thing that may differ: when the file was generated.
            pages[path] = GENERATED.sub(b"", await response.read())
    heard = await client.get(f"/campaigns/ecoles/audio/{HEARD}.mp3")
    pages["heard"] = str(heard.status).encode() + await heard.read()
    return pages


def purge(runtime: Runtime, *, dry_run: bool = False) -> retention.PurgeReport:
    with runtime.sessions.begin() as session:
        return retention.purge(
            session,
            runtime.settings.data_path,
            NOW,
            days_after_close=90,
            raw_days=30,
            dry_run=dry_run,
        )


async def test_a_purge_removes_exactly_what_is_past_its_period(
    runtime: Runtime, settings: Settings, aiohttp_client: Any
) -> None:
    ids = build(runtime)
    client = await aiohttp_client(create_app(settings))
    public_before = await public_outputs(client)
    # What the comparison covers: the texts, the recording heard, the photo published.
    published = public_before["/campaigns/ecoles/contributions.json"]
    assert b"texte photos" in published and b"texte private_voice" in published
    assert b"RET-heard.mp3" in published and b"/photos/" in published.replace(b"photo_urls", b"")
    assert public_before["heard"].startswith(b"200")
    # A radio copy of the private recording (gateway.audio_cache), not yet pruned by the radio's
    # own tidying (gateway.publication.radio.prune): it goes with its recording.
    data = settings.data_path
    _file(data, str((cache_dir(data) / f"{ids['private_voice']}-abc.mp3").relative_to(data)))
    before = snapshot(runtime)

    counts = purge(runtime, dry_run=True)
    assert snapshot(runtime) == before, "a dry run changed something"

    report = purge(runtime)
    expected = {
        "payloads": 1,  # old_message (the waiting one and the recent one stay)
        "replies": 2,  # old_reply, old_failed
        "callbacks": 1,
        "conversations": 1,  # idle and old; the fresh and the active one stay
        "quarantined": 1,
        "calls": 1,
        "recordings": 1,  # private_voice (heard is broadcast, open_voice's campaign is open)
        "attachments": 2,  # photos (the private one), spam
        "addresses": 2,  # done, stop
        "files": 4,  # private.wav, its radio copy, private.jpg, spam.jpg
    }
    assert {k: v for k, v in vars(report).items()} == expected
    assert {k: v for k, v in vars(counts).items()} == expected, "the dry run's counts differ"

    with runtime.sessions() as session:
        people = {c.public_id: c for c in session.scalars(select(Contributor))}
        assert people["c-done"].address_encrypted is None
        assert people["c-stop"].address_encrypted is None
        # The opt-out survives: the look-up hash and the flag stay.
        assert people["c-stop"].opted_out and people["c-stop"].address_hash
        for kept in ("c-busy", "c-info", "c-recent"):
            assert people[kept].address_encrypted is not None, kept
        assert all(p.address_hash for p in people.values())

        def contribution(name: str) -> Contribution:
            row = session.get(Contribution, ids[name])
            assert row is not None
            return row

        assert contribution("heard").audio_path == "audio/heard.wav"
        assert contribution("private_voice").audio_path is None
        assert contribution("private_voice").text == "texte private_voice"
        assert contribution("private_voice").transcript == "texte private"
        assert [i["path"] for i in contribution("photos").attachments] == [
            "media/public.jpg",
            "texts/long.txt",
        ]
        assert contribution("spam").attachments == []
        assert len(contribution("fresh_reject").attachments) == 1
        assert contribution("open_voice").audio_path == "audio/open.wav"

        old = session.get(InboundMessage, ids["old_message"])
        assert old is not None  # the row stays: its provider id absorbs a late retry
        assert (old.raw_encrypted, old.sender_encrypted, old.text) == (None, None, "")
        assert old.provider_message_id == "SMold_message"
        for name in ("waiting_message", "new_message"):
            kept_message = session.get(InboundMessage, ids[name])
            assert kept_message is not None and kept_message.raw_encrypted is not None

        old_reply = session.get(OutboundMessage, ids["old_reply"])
        assert old_reply is not None and old_reply.decision_key == "reply-old_reply"
        assert (old_reply.recipient_encrypted, old_reply.text) == (None, "")
        for name in ("new_reply", "queued_reply"):
            kept_reply = session.get(OutboundMessage, ids[name])
            assert kept_reply is not None and kept_reply.text and kept_reply.recipient_encrypted

        assert session.get(Callback, ids["old_callback"]) is None
        assert session.get(Callback, ids["queued_callback"]) is not None
        assert session.get(Conversation, ids["idle_conversation"]) is None
        assert session.get(Conversation, ids["fresh_conversation"]) is not None
        assert session.get(Conversation, ids["active_conversation"]) is not None
        old_q = session.get(QuarantinedMessage, ids["old_quarantine"])
        assert old_q is not None and old_q.payload_encrypted is None and old_q.reason
        new_q = session.get(QuarantinedMessage, ids["new_quarantine"])
        assert new_q is not None and new_q.payload_encrypted is not None
        assert session.get(VoiceCall, ids["old_call"]) is None
        assert session.get(VoiceCall, ids["live_call"]) is not None

    files = set(snapshot(runtime)["files"])
    for gone in ("audio/private.wav", "media/private.jpg", "media/spam.jpg"):
        assert gone not in files
    assert not any(f.endswith("-abc.mp3") for f in files)
    for kept_file in (
        "audio/heard.wav",
        "audio/open.wav",
        "media/public.jpg",
        "media/fresh.jpg",
        "texts/long.txt",
    ):
        assert kept_file in files

    assert await public_outputs(client) == public_before

    after = snapshot(runtime)
    again = purge(runtime)
    assert not again, again.summary()
    assert snapshot(runtime) == after


def test_the_command_prints_counts_and_a_dry_run_changes_nothing(
    runtime: Runtime, settings: Settings
) -> None:
    from gateway.cli import main as cli

    now = datetime.now(UTC)
    address = "+33699999999"
    with runtime.sessions.begin() as session:
        session.add(
            InboundMessage(
                channel="sms",
                provider_message_id="SMcli",
                sender_hash=runtime.vault.lookup_hash("sms", address),
                sender_encrypted=runtime.vault.encrypt(address, inbound_sender("sms", "SMcli")),
                raw_encrypted=runtime.vault.encrypt(address, inbound_raw("sms", "SMcli")),
                text="PARC bonjour",
                received_at=now - 400 * DAY,
                state="processed",
            )
        )
    env = cli_env(settings)
    dry = CliRunner().invoke(cli, ["privacy", "purge", "--dry-run", "--json"], env=env)
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["payloads"] == 1 and json.loads(dry.stdout)["dry_run"]
    with runtime.sessions() as session:
        assert session.scalar(select(InboundMessage.raw_encrypted)) is not None

    # --verbose: a one-off command's log lines (the sweeper's daily purge logs them always).
    real = CliRunner().invoke(cli, ["--verbose", "privacy", "purge"], env=env)
    assert real.exit_code == 0, real.output
    assert "purged:" in real.output and "payloads=1" in real.output
    # The log line (standard error) carries the counts, nothing personal.
    assert "retention: payloads=1" in real.stderr
    assert address not in real.stderr and address not in real.stdout
    with runtime.sessions() as session:
        assert session.scalar(select(InboundMessage.raw_encrypted)) is None

    again = CliRunner().invoke(cli, ["privacy", "purge", "--json"], env=env)
    assert again.exit_code == 0, again.output
    assert not any(v for k, v in json.loads(again.stdout).items() if k != "dry_run")


def test_the_daily_purge_runs_once_a_day_and_never_twice_at_once(runtime: Runtime) -> None:
    with hold(runtime.redis, retention.LOCK_NAME, wait=0):
        # A purge is running elsewhere (the command): the sweeper does not start a second.
        assert retention.daily(runtime) is None
    runtime.redis.delete(retention.DAY_KEY)
    assert retention.daily(runtime) is not None
    assert retention.daily(runtime) is None  # another sweeper, the same day
    assert runtime.redis.ttl(retention.DAY_KEY) > 23 * 3600


def test_the_sweeper_purges_once_a_day_with_the_settings_periods(runtime: Runtime) -> None:
    from workers import sweeper

    now = datetime.now(UTC)
    with runtime.sessions.begin() as session:
        for name, days in (("SMold", 31), ("SMnew", 29)):  # RAW_PAYLOAD_RETENTION_DAYS: 30
            session.add(
                InboundMessage(
                    channel="sms",
                    provider_message_id=name,
                    raw_encrypted=runtime.vault.encrypt("{}", inbound_raw("sms", name)),
                    text="bonjour",
                    received_at=now - days * DAY,
                    state="processed",
                )
            )
    sweeper.sweep(runtime)
    with runtime.sessions() as session:
        rows = session.execute(select(InboundMessage.provider_message_id, InboundMessage.text))
        kept = {provider_id: text for provider_id, text in rows.all()}
    assert kept == {"SMold": "", "SMnew": "bonjour"}
    assert runtime.redis.exists(retention.DAY_KEY)


@pytest.mark.parametrize("value", ["0", "-5", "quatre-vingt-dix"])
def test_a_period_that_makes_no_sense_is_refused_and_nothing_is_purged(
    runtime: Runtime, settings: Settings, value: str
) -> None:
    from gateway.cli import main as cli

    with runtime.sessions.begin() as session:
        session.add(
            InboundMessage(
                channel="sms",
                provider_message_id="SMkept",
                raw_encrypted=runtime.vault.encrypt("{}", inbound_raw("sms", "SMkept")),
                text="bonjour",
                received_at=datetime.now(UTC) - 400 * DAY,
                state="processed",
            )
        )
    for name in ("GATEWAY_RAW_PAYLOAD_RETENTION_DAYS", "GATEWAY_RETENTION_DAYS_AFTER_CLOSE"):
        result = CliRunner().invoke(
            cli, ["privacy", "purge"], env={**cli_env(settings), name: value}
        )
        assert result.exit_code != 0
        assert name.removeprefix("GATEWAY_") in result.output.upper(), result.output
        with runtime.sessions() as session:
            assert session.scalar(select(InboundMessage.text)) == "bonjour"


# Redis keys that hold no data of their own, only names: the set of queue names, and the
# queues and job registries, whose members are job ids (each job's own keys expire).
RQ_STRUCTURE = re.compile(
    rb"rq:queues|rq:queue:[\w-]+|rq:(finished|failed|started|deferred|scheduled|canceled|wip)"
    rb":[\w-]+|rq:workers(:[\w-]+)?|rq:clean_registries:[\w-]+"
)


def test_nothing_in_redis_outlives_the_shortest_retention_period(
    runtime: Runtime, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis is never purged: what it holds must expire by itself, before the shortest period
    (RAW_PAYLOAD_RETENTION_DAYS), whether a job succeeded or failed (RQ keeps a failed job, its
    arguments and its traceback, for KEEP_FAILURE)."""
    from gateway import processing
    from tests.helpers import drain, send_sms

    for n in range(3):
        send_sms(runtime, "PARC des bancs près du lavoir", sender=f"+3361234000{n}")
    send_sms(runtime, "STOP", sender="+33612340001")
    real = processing.process_inbound

    def poison(rt: Runtime, message_id: int) -> list[int]:
        raise RuntimeError("this message cannot be processed")

    monkeypatch.setattr(processing, "process_inbound", poison)
    send_sms(runtime, "PARC encore", sender="+33612340005")
    monkeypatch.setattr(processing, "process_inbound", real)
    drain(runtime)
    # What the web processes keep there too: their counters and the operations page's history.
    from gateway import metrics

    metrics.count("webhook_requests", provider="twilio", status="200")
    redis = runtime.redis
    assert metrics.flush(redis)
    assert metrics.record_sample(runtime)

    limit = settings.raw_payload_retention_days * 24 * 3600
    now = datetime.now(UTC).timestamp()
    kinds: dict[str, int] = {}
    for key in redis.scan_iter(count=1000):
        ttl = redis.ttl(key)
        if RQ_STRUCTURE.fullmatch(key):
            kind = "structure"
            if redis.type(key) == b"zset":
                # A registry's score is when its entry expires (+inf: while the job runs).
                for member, score in redis.zrange(key, 0, -1, withscores=True):
                    assert score == float("inf") or score - now <= limit, (key, member)
                    assert redis.exists(b"rq:job:" + member), (key, member)
        else:
            assert 0 < ttl <= limit, f"{key!r} lives {ttl} s (limit {limit} s)"
            kind = key.split(b":")[1].decode() if key.startswith(b"rq:") else "gateway"
        kinds[kind] = kinds.get(kind, 0) + 1
    # The scenario left what it should: jobs, their results, and the failed one.
    assert kinds.get("job", 0) >= 5 and kinds.get("results", 0) >= 4, kinds
    assert redis.zcard("rq:failed:inbound") == 1
    assert kinds.get("gateway", 0) >= 3, kinds  # counters, history, the sampling guard
