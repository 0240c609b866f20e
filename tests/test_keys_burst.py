"""`gateway keys rotate` while a real `gateway serve` takes a burst of signed SMS, in both
set-ups (SQLite with the embedded Redis and worker; PostgreSQL with Debian's Redis and a
separate `gateway worker`): every message filed once, every receipt sent to the number that
wrote it, each repeat sender (writing before and after the rotation re-hashes them) still one
contributor, nothing left under the old key, no look-up hash under it either, and it can then
be retired; a rotation killed half-way finishes when run again."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine

from channels.twilio.tests.fake_api import FakeTwilio
from gateway import keyring
from gateway.privacy import AddressVault
from gateway.rotation import hash_audit, status
from tests.conftest import RedisServer
from tests.helpers import sms_form
from tests.test_e2e_serve import GATEWAY, Gateway, base_env

pytestmark = pytest.mark.e2e

SENDERS = [f"+3361500{i:04d}" for i in range(50)]
# 200 messages: every fourth sender writes 7 times, the others 3 or 4 times.
PLAN = [(i % 50, i) for i in range(200)]


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as f:
        yield f


@pytest.fixture(params=["sqlite", "postgresql"])
def gateway(request: pytest.FixtureRequest, tmp_path: Path, fake: FakeTwilio) -> Iterator[Gateway]:
    env = base_env(tmp_path, fake)
    # A burst from 50 residents is not a flood: the per-sender limit is not what is tested.
    env["GATEWAY_FLOOD_GLOBAL_PER_MINUTE"] = "5000"
    gw = Gateway(env, tmp_path)
    if request.param == "postgresql":
        from redis import Redis

        from tests.conftest import _truncate_postgres

        postgres_url = request.getfixturevalue("postgres_url")
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        _truncate_postgres(postgres_url)
        Redis.from_url(redis_server.url).flushdb()
        env["GATEWAY_DATABASE_URL"] = postgres_url
        env["GATEWAY_REDIS_URL"] = redis_server.url
        gw.cli("db", "upgrade")
        gw.start("serve")
        gw.start("worker")
    else:
        gw.start("serve")
    try:
        gw.wait_healthy()
        yield gw
    finally:
        gw.stop()


def database_url(gw: Gateway) -> str:
    return gw.env.get("GATEWAY_DATABASE_URL") or (
        f"sqlite:///{Path(gw.env['GATEWAY_DATA_DIR']) / 'gateway.sqlite3'}"
    )


def key_file(gw: Gateway) -> Path:
    return Path(gw.env["GATEWAY_DATA_DIR"]).parent / "secrets" / "data.key"


def totals(counts: dict[str, dict[int, int]]) -> dict[int, int]:
    found: dict[int, int] = defaultdict(int)
    for per_key in counts.values():
        for key_id, n in per_key.items():
            found[key_id] += n
    return dict(found)


def vault_of(path: Path) -> AddressVault:
    return AddressVault(keyring.read(path).root, path)


def hashes_under(engine: Engine, path: Path) -> set[int | str]:
    """The key ids the stored look-up hashes are under (recomputed from the addresses)."""
    return {kind for kinds in hash_audit(engine, vault_of(path)).values() for kind in kinds}


def rotate_process(gw: Gateway, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*GATEWAY, "keys", "rotate", *args],
        env=gw.env,
        cwd=gw.workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def check_filed(gw: Gateway, fake: FakeTwilio, plan: list[tuple[int, int]]) -> None:
    """Each message of ``plan`` filed once, under one contributor per sender, and its receipt
    (naming its reference) sent to the number that wrote it."""
    found = gw.wait_for_contributions(len(plan))
    time.sleep(2)  # a wrongly duplicated job would show up meanwhile
    found = gw.contributions()
    by_text = defaultdict(list)
    for c in found:
        by_text[str(c["text"])].append(c)
    assert sorted(by_text) == sorted(f"idée {n} de {s}" for s, n in plan)
    assert all(len(v) == 1 for v in by_text.values())  # each once
    contributors: dict[int, set[object]] = defaultdict(set)
    expected: dict[str, set[str]] = defaultdict(set)
    for text, (c,) in by_text.items():
        sender = int(re.fullmatch(r"idée \d+ de (\d+)", text).group(1))  # type: ignore[union-attr]
        contributors[sender].add(c["contributor"])
        expected[SENDERS[sender]].add(str(c["reference"]))
    assert all(len(ids) == 1 for ids in contributors.values()), contributors
    assert len({next(iter(ids)) for ids in contributors.values()}) == len(contributors)
    deadline = time.monotonic() + 120
    while True:
        sent: dict[str, set[str]] = defaultdict(set)
        for m in fake.messages:
            sent[m["To"]].update(re.findall(r"PARC-\d+", m["Body"]))
        if all(expected[n] <= sent[n] for n in expected) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for number, references in expected.items():
        assert references <= sent[number], (number, references, sent[number], gw.logs())
    assert set(sent) <= set(SENDERS)  # nothing to a number that did not write


def test_rotation_during_a_burst_loses_nothing(gateway: Gateway, fake: FakeTwilio):
    gw = gateway
    path = key_file(gw)
    assert keyring.read(path).ids == [1]  # generated on first start: one bare key, id 1
    engine = create_engine(database_url(gw))
    rotation: subprocess.Popen[str] | None = None
    running_when_done = False
    for count, (sender, n) in enumerate(PLAN):
        if count == 20:
            rotation = rotate_process(gw)
        form = sms_form(f"PARC idée {n} de {sender}", sender=SENDERS[sender], to="+33100000001")
        response = gw.post_sms(form)
        assert response.status_code == 200, response.text
    assert rotation is not None
    running_when_done = rotation.poll() is None
    out, err = rotation.communicate(timeout=300)
    assert rotation.returncode == 0, err
    assert "key id 2 is now current" in out
    assert re.search(r"(\d+) value\(s\) re-encrypted", out)
    check_filed(gw, fake, PLAN)
    # Nothing is left under the old key: what the rotation did not reach was written under
    # the new one by processes that had read the key file.
    counts = status(engine)
    assert set(totals(counts)) == {2}, (counts, running_when_done)
    # Every sender re-hashed under key 2, though they kept writing while it happened: the
    # check above found each of them one contributor.
    assert "person(s) re-hashed under key id 2" in out
    assert hashes_under(engine, path) == {2}, hash_audit(engine, vault_of(path))
    shown = gw.cli("keys", "status")
    assert "current key id: 2" in shown and "key id 1:" not in shown
    assert "retired" in gw.cli("keys", "retire", "1")
    assert keyring.read(path).keys.keys() == {2}

    # A rotation killed half-way (many batches of one value each) ...
    rotation = rotate_process(gw, "--batch", "1")
    deadline = time.monotonic() + 120
    while True:
        seen = totals(status(engine))
        if seen.get(3) and seen.get(2):
            break
        assert rotation.poll() is None, "the rotation ended before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    rotation.send_signal(signal.SIGKILL)
    rotation.wait(30)
    shown = gw.cli("keys", "status")
    assert "key id 2:" in shown and "key id 3:" in shown
    refused = subprocess.run(
        [*GATEWAY, "keys", "retire", "2"], env=gw.env, capture_output=True, text=True
    )
    assert refused.returncode != 0 and "still encrypted under key id 2" in refused.stderr
    # ... goes on when run again, without a third new key, and everyone is still found.
    out = gw.cli("keys", "rotate")
    assert "a rotation to key id 3 was under way: continued" in out
    assert set(totals(status(engine))) == {3}
    assert "retired" in gw.cli("keys", "retire", "2")
    # After the retirements, returning senders are the same contributors, answered at their
    # own numbers, by the gateway processes that had been running all along.
    later = [(s, 1000 + s) for s in (0, 1, 2, 3)]
    for sender, n in later:
        form = sms_form(f"PARC idée {n} de {sender}", sender=SENDERS[sender], to="+33100000001")
        assert gw.post_sms(form).status_code == 200
    check_filed(gw, fake, PLAN + later)
    assert set(totals(status(engine))) == {3}
    assert hashes_under(engine, path) == {3}  # no hash depends on a retired key
    engine.dispose()
    # No key in any process's log, nor in what the commands printed.
    ring = keyring.read(path)
    logs = "".join(p.read_text(errors="replace") for p in gw.workdir.glob("*.log"))
    printed = logs + out + gw.cli("keys", "status")
    for secret in (ring.root, *ring.keys.values()):
        assert secret not in printed
