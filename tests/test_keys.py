"""The keyring and key rotation (gateway.keyring, gateway.rotation), in the test's process, on
SQLite and PostgreSQL: every value re-encrypted under the new key and still the same, old
keys retired only when unused, an interrupted rotation finished by running it again, forged
key ids unreadable. The rotation during a burst of a real `gateway serve` is in
tests/test_keys_burst.py."""

from __future__ import annotations

import io
import logging
import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import func, select, update

from channels.twilio.tests.fake_api import FakeTwilio
from gateway import keyring, persons, privacy, residents
from gateway.keyring import Keyring, KeyringError
from gateway.models import (
    Callback,
    Campaign,
    Contribution,
    Contributor,
    InboundMessage,
    QuarantinedMessage,
    VoiceCall,
)
from gateway.privacy import (
    MARKER,
    AddressVault,
    Unreadable,
    _derive,
    callback_recipient,
    contributor_address,
    inbound_sender,
    quarantine_payload,
)
from gateway.publication import opendata
from gateway.rewrap import COLUMNS, rewrite_column
from gateway.rotation import (
    NO_ADDRESS,
    Rotation,
    RotationError,
    hash_audit,
    older_than,
    read_any,
    rehash,
    remaining,
    retire,
    rotate,
    status,
)
from gateway.runtime import Runtime
from gateway.settings import Settings
from tests.helpers import runtime_with, send_sms
from tests.test_secrets_and_files import ALICE, BOB, add_legacy_rows, all_values

CAROL = "+33698765432"


def new_key() -> str:
    return secrets.token_urlsafe(48)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    """An existing installation's key file: one bare line, as every older version wrote."""
    path = tmp_path / "secrets" / "gateway.key"
    path.parent.mkdir(mode=0o700)
    path.write_text(new_key() + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def keyed(settings: Settings, key_file: Path) -> Iterator[Runtime]:
    """A runtime whose key comes from the key file (not from GATEWAY_SECRET_KEY)."""
    rt = runtime_with(settings, secret_key="", secret_key_file=str(key_file))
    yield rt
    rt.close()


def format2(secret_key: str, value: bytes, binding: privacy.Binding) -> bytes:
    """A value as the version before key ids wrote it: marker, nonce, AES-GCM with the binding."""
    nonce = os.urandom(12)
    aead = AESGCM(_derive(secret_key, b"address-encryption"))
    return MARKER + nonce + aead.encrypt(nonce, value, binding.associated_data())


def seed(rt: Runtime) -> None:
    """Values in every encrypted column and in every format: format 3 written by the gateway
    itself (three residents, one of whom writes twice, a quarantined message), format 1 (before
    row bindings) and format 2 (before key ids)."""
    assert send_sms(rt, "PARC des bancs", sender=ALICE)
    assert send_sms(rt, "PARC des arbres", sender=ALICE)
    assert send_sms(rt, "PARC une fontaine", sender=CAROL)
    add_legacy_rows(rt)
    with rt.sessions.begin() as session:
        session.add(
            QuarantinedMessage(
                channel="sms",
                provider_key="SMq2",
                sender_hash=rt.vault.lookup_hash("sms", BOB),
                reason="test",
                payload_encrypted=format2(
                    rt.vault.root_secret, b'{"sender": "bob"}', quarantine_payload("sms", "SMq2")
                ),
            )
        )
        session.add(
            Callback(
                decision_key="cb-1",
                text="x",
                recipient_encrypted=rt.vault.encrypt(BOB, callback_recipient("cb-1")),
            )
        )
        session.add(
            QuarantinedMessage(
                channel="sms",
                provider_key="SMq3",
                reason="test",
                payload_encrypted=rt.vault.encrypt("{}", quarantine_payload("sms", "SMq3")),
            )
        )


def clear_values(rt: Runtime) -> dict[tuple[str, tuple[str, ...]], bytes]:
    """Every encrypted value of the database, decrypted where it lives (binding checked)."""
    values = {(b.column, b.row): rt.vault.decrypt_bytes(t, b) for t, b in all_values(rt)}
    with rt.sessions() as session:
        for c in session.scalars(select(Callback)):
            binding = callback_recipient(c.decision_key)
            values[(binding.column, binding.row)] = rt.vault.decrypt_bytes(
                c.recipient_encrypted, binding
            )
        for q in session.scalars(select(QuarantinedMessage)):
            binding = quarantine_payload(q.channel, q.provider_key)
            values[(binding.column, binding.row)] = rt.vault.decrypt_bytes(
                q.payload_encrypted, binding
            )
    return values


def values_of(values: dict[tuple[str, tuple[str, ...]], bytes]) -> list[tuple[str, bytes]]:
    """Every value with its column, whatever its row's key (a contributor's binding names its
    look-up hash, which a rotation changes)."""
    return sorted((column, value) for (column, _), value in values.items())


def per_column(counts: dict[str, dict[int, int]]) -> dict[str, int]:
    return {name: sum(per_key.values()) for name, per_key in counts.items()}


def test_rotation_reencrypts_every_value_and_retire_keeps_everyone_readable(
    keyed: Runtime, key_file: Path, fake_twilio: FakeTwilio, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    seed(keyed)
    before = clear_values(keyed)
    old_tokens = [t for t, _ in all_values(keyed)]
    counts = status(keyed.engine)
    assert set().union(*(set(k) for k in counts.values())) == {1}
    assert per_column(counts)["contributors.address_encrypted"] == 5  # Alice, Carol, 3 old
    assert per_column(counts)["quarantined_messages.payload_encrypted"] == 2
    assert all(per_column(counts).values()), counts  # every column holds something
    with pytest.raises(RotationError, match="current key"):
        retire(keyed.engine, key_file, 1)

    report = rotate(keyed.engine, keyed.vault, key_file, settle=0)

    assert report.new_key and report.key_id == 2
    assert report.rewritten == per_column(counts)  # each value once, counted per column
    assert not any(report.unreadable.values())
    after = status(keyed.engine)
    assert all(set(per_key) == {2} for per_key in after.values()), after
    assert per_column(after) == per_column(counts)
    assert values_of(clear_values(keyed)) == values_of(before)  # nothing lost, nothing changed
    assert keyed.vault.current_key_id == 2

    retire(keyed.engine, key_file, 1)
    keyed.vault.reload()
    assert keyed.vault.key_ids == [2]
    assert values_of(clear_values(keyed)) == values_of(before)  # every address still decrypts
    for token in old_tokens:  # the retired key is really gone from the vault
        with pytest.raises(Unreadable):
            keyed.vault.decrypt_bytes(token, contributor_address("sms", None))
    # The root secret stays (look-up hashes, pseudonyms, the console's keys derive from it).
    ring = keyring.read(key_file)
    assert ring.root == keyed.vault.root_secret and ring.retired == {1}
    assert Keyring.parse(key_file.read_text()).current == 2

    # A returning sender is found as the same person, and the receipt goes to their number.
    assert send_sms(keyed, "PARC encore une idée", sender=ALICE)
    with keyed.sessions() as session:
        alices = session.scalars(
            select(Contributor).where(
                Contributor.address_hash == keyed.vault.lookup_hash("sms", ALICE)
            )
        ).all()
        assert len(alices) == 1
        mine = session.scalars(
            select(Contribution).where(Contribution.contributor_id == alices[0].id)
        ).all()
        assert len(mine) == 3
        assert (
            keyed.vault.decrypt(
                alices[0].address_encrypted, contributor_address("sms", alices[0].address_hash)
            )
            == ALICE
        )
    # The reply went to their number (its stored copy is wiped once sent).
    assert fake_twilio.messages[-1]["To"] == ALICE
    # No key was logged.
    for secret in (ring.root, *ring.keys.values()):
        assert secret not in caplog.text


def test_retire_refuses_while_values_remain_and_says_how_many(keyed: Runtime, key_file: Path):
    seed(keyed)
    total = sum(per_column(status(keyed.engine)).values())
    keyring.write(key_file, keyring.read(key_file).with_new_key())
    keyed.vault.reload()
    with pytest.raises(RotationError, match=f"{total} value"):
        retire(keyed.engine, key_file, 1)
    with pytest.raises(RotationError, match="no key id 7"):
        retire(keyed.engine, key_file, 7)
    assert keyring.read(key_file).keys.keys() == {1, 2}  # the file was left as it was


def test_an_interrupted_rotation_goes_on_when_run_again(keyed: Runtime, key_file: Path):
    seed(keyed)
    before = clear_values(keyed)
    counts = per_column(status(keyed.engine))
    # What a rotation killed half-way leaves: the new key current, some columns done.
    keyring.write(key_file, keyring.read(key_file).with_new_key())
    keyed.vault.reload()
    first, second = COLUMNS[0], COLUMNS[1]
    rewrite_column(keyed.engine, keyed.vault, first, older_than(2), read_any)
    rewrite_column(keyed.engine, keyed.vault, second, older_than(2), read_any, batch=1)
    assert (
        remaining(keyed.engine, 1)
        == sum(counts.values()) - counts[first.name] - counts[second.name]
    )

    report = rotate(keyed.engine, keyed.vault, key_file, settle=0)

    assert not report.new_key and report.key_id == 2  # no third key: it went on
    assert report.rewritten[first.name] == 0 and report.rewritten[second.name] == 0
    assert report.total == remaining_before(counts, first.name, second.name)
    assert remaining(keyed.engine, 1) == 0
    assert values_of(clear_values(keyed)) == values_of(before)
    # Once nothing is left under an older key, a rotation mints a new key again.
    again = rotate(keyed.engine, keyed.vault, key_file, settle=0)
    assert again.new_key and again.key_id == 3 and again.total == sum(counts.values())


def remaining_before(counts: dict[str, int], *done: str) -> int:
    return sum(n for name, n in counts.items() if name not in done)


def test_forged_key_ids_and_moved_ciphertexts_are_unreadable(tmp_path: Path):
    path = tmp_path / "gateway.key"
    root = new_key()
    keyring.write(path, Keyring.single(root).with_new_key())
    vault = AddressVault(root, path)
    here, there = inbound_sender("sms", "SM1"), inbound_sender("sms", "SM2")
    token = vault.encrypt(ALICE, here)
    assert token.startswith(privacy.key_prefix(2))
    assert vault.decrypt(token, here) == ALICE
    body = token[len(privacy.key_prefix(2)) :]
    for forged in (1, 3, 0xFFFF):  # another key of the ring, unknown ids
        with pytest.raises(Unreadable):
            vault.decrypt(privacy.key_prefix(forged) + body, here)
    with pytest.raises(Unreadable):  # moved to another row
        vault.decrypt(token, there)
    with pytest.raises(Unreadable):  # the marker of format 2 in front of a format 3 body
        vault.decrypt(MARKER + body, here)
    assert vault.decrypt_or_none(privacy.key_prefix(1) + body, here) is None
    # Formats 2 and 1 are still read, under key id 1.
    assert vault.decrypt(format2(root, ALICE.encode(), here), here) == ALICE
    from tests.test_secrets_and_files import legacy

    assert vault.decrypt(legacy(root, BOB.encode()), here) == BOB
    # The audit reader finds the clear text of every format, as anyone with the keys could.
    assert vault.decrypt_any_context(token) == ALICE.encode()
    assert vault.decrypt_any_context(format2(root, b"x" * 5, here)) == b"x" * 5


def test_running_processes_learn_a_new_key_from_the_file(tmp_path: Path):
    path = tmp_path / "gateway.key"
    root = new_key()
    path.write_text(root + "\n")
    writer, other = AddressVault(root, path), AddressVault(root, path)
    binding = inbound_sender("sms", "SM1")
    assert writer.encrypt(ALICE, binding).startswith(privacy.key_prefix(1))
    keyring.write(path, keyring.read(path).with_new_key())
    # A ciphertext naming a key id the process does not know yet: it reads the file at once.
    writer.reload()
    fresh = writer.encrypt(ALICE, binding)
    assert fresh.startswith(privacy.key_prefix(2))
    assert other.decrypt(fresh, binding) == ALICE
    # Every process looks at the file's modification time before it encrypts.
    third = AddressVault(root, path)
    keyring.write(path, keyring.read(path).with_new_key())
    third._next_look = 0.0  # the RELOAD_EVERY seconds have passed
    assert third.encrypt(ALICE, binding).startswith(privacy.key_prefix(3))


def test_key_files_old_and_new_and_the_environment(tmp_path: Path, settings: Settings):
    root, second = new_key(), new_key()
    ring = Keyring.parse(f"{root}\n")
    assert ring.keys == {1: root} and ring.current == 1 and ring.root == root
    ring = Keyring.parse(f"# comment\n{root}\n2 {second}\n")
    assert ring.current == 2 and Keyring.parse(ring.render()) == ring
    retired = ring.without(1).with_new_key().without(2)
    text = retired.render()
    assert second not in text and root in text  # a retired key's secret leaves the file
    assert Keyring.parse(text) == retired and retired.current == 3
    for bad in (f"{root}\n{root}\n", f"x {root}\n", f"2 {second}\n", f"1 {root} 3 x\n", ""):
        with pytest.raises(KeyringError) as caught:
            Keyring.parse(bad)
        assert root not in str(caught.value) and second not in str(caught.value)
    # An installation whose key is given as GATEWAY_SECRET_KEY is one key; it cannot rotate.
    path = tmp_path / "secrets" / "env.key"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"{new_key()}\n2 {second}\n")
    vault = AddressVault(settings.secret_key, path)
    assert vault.key_ids == [1]
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    with pytest.raises(RotationError, match="does not hold the key"):
        rotate(engine, vault, path, settle=0)
    with pytest.raises(RotationError, match="no key file"):
        rotate(engine, vault, tmp_path / "missing.key", settle=0)


DAVE = "+33655555555"  # never writes before the rotation: an admin opts him out


def open_data(rt: Runtime) -> bytes:
    """The open-data CSV of every campaign, as published (the pseudonyms in it)."""
    out = io.BytesIO()
    with rt.sessions() as session:
        for campaign in session.scalars(select(Campaign).order_by(Campaign.id)):
            records = opendata.records_for(session, rt, campaign)
            opendata.write(records, "csv", out, rt.settings, campaign=campaign)
    return out.getvalue()


def test_rotation_rehashes_everyone_and_nothing_depends_on_the_retired_key(
    keyed: Runtime, key_file: Path, fake_twilio: FakeTwilio
):
    seed(keyed)
    now = datetime.now(UTC)
    root_alice = keyed.vault.lookup_hash("sms", ALICE)
    with keyed.sessions.begin() as session:
        # Alice also calls from her number: a voice row, the same person (one namespace).
        residents.contributor_for(
            session,
            "voice",
            root_alice,
            keyed.vault.encrypt(ALICE, contributor_address("voice", root_alice)),
            now,
        )
        session.execute(update(Contribution).values(status="published"))
    residents.opt_out_address(keyed, "sms", CAROL, actor="test")  # she said STOP
    residents.opt_out_address(keyed, "sms", DAVE, actor="test")  # never wrote: hash only
    published = open_data(keyed)
    assert published.count(b"\r\n") > 3  # the contributions are in it, with pseudonyms
    before = hash_audit(keyed.engine, keyed.vault)
    assert before["contributors.address_hash"] == {1: 6, NO_ADDRESS: 1}  # + Alice's voice, Dave
    assert before["inbound_messages.sender_hash"] == {1: 4}
    assert before["quarantined_messages.sender_hash"] == {NO_ADDRESS: 1}  # Bob's, hash only

    report = rotate(keyed.engine, keyed.vault, key_file, settle=0)
    retire(keyed.engine, key_file, 1)
    keyed.vault.reload()

    assert report.people == 5 and report.conflicts == 0  # Alice, Carol, three older rows
    assert report.rehashed["contributors.address_hash"] == 6
    after = hash_audit(keyed.engine, keyed.vault)
    # Every hash with an address beside it is now under key 2; only hash-only rows remain
    # under the root (Dave's opt-out, Bob's quarantined message): counted, not re-hashable.
    assert after["contributors.address_hash"] == {2: 6, NO_ADDRESS: 1}
    assert after["inbound_messages.sender_hash"] == {2: 4}
    assert after["quarantined_messages.sender_hash"] == {NO_ADDRESS: 1}
    # Recomputed by hand: no stored hash is the root key's hash of a known address any more,
    # but for Dave's and Bob's.
    root_hashes = {
        keyed.vault.root_lookup_hash(channel, address)
        for channel in ("sms", "telegram")
        for address in (ALICE, CAROL, *(f"+3361234560{i}" for i in range(3)))
    }
    with keyed.sessions() as session:
        stored = set(session.scalars(select(Contributor.address_hash)))
        stored |= set(session.scalars(select(InboundMessage.sender_hash)))
        stored |= set(session.scalars(select(VoiceCall.caller_hash)))
        stored |= set(session.scalars(select(QuarantinedMessage.sender_hash)))
    assert not stored & root_hashes
    assert keyed.vault.root_lookup_hash("sms", DAVE) in stored  # the hash-only remnant

    # The published pseudonyms did not change: the same bytes.
    assert open_data(keyed) == published

    # Returning senders are the same people; Alice's SMS and voice rows are still one person.
    sent = len(fake_twilio.messages)
    assert send_sms(keyed, "PARC encore", sender=ALICE)
    send_sms(keyed, "PARC toujours", sender=CAROL)  # opted out: no receipt
    send_sms(keyed, "PARC bonjour", sender=DAVE)
    with keyed.sessions() as session:
        alice = keyed.vault.lookup_hash("sms", ALICE)
        assert alice != root_alice
        rows = residents.rows_of(session, alice)
        assert sorted(r.channel for r in rows) == ["sms", "voice"]
        assert (
            session.scalar(
                select(func.count(Contribution.id)).where(Contribution.contributor_id == rows[0].id)
            )
            == 3
        )
        for number in (ALICE, CAROL, DAVE):
            hashes = list(keyed.vault.lookup_hashes("sms", number).values())
            sms_rows = session.scalars(
                select(Contributor).where(
                    Contributor.channel == "sms", Contributor.address_hash.in_(hashes)
                )
            ).all()
            assert len(sms_rows) == 1, number  # never a second contributor
        # Opt-outs hold, the hash-only one included.
        assert residents.is_opted_out(session, keyed.vault.lookup_hash("sms", CAROL))
        assert residents.is_opted_out(session, keyed.vault.root_lookup_hash("sms", DAVE))
        assert not residents.is_opted_out(session, alice)
    to = [m["To"] for m in fake_twilio.messages[sent:]]
    assert ALICE in to and CAROL not in to and DAVE not in to

    # Forgetting Dave (by an admin) erases his rows under every key's hash: his hash-only
    # opt-out and his message under the root's, a quarantined message under the new key's.
    daves = list(keyed.vault.lookup_hashes("sms", DAVE).values())
    with keyed.sessions.begin() as session:
        session.add(
            QuarantinedMessage(
                channel="sms",
                provider_key="SMdave",
                sender_hash=daves[0],
                reason="test",
                payload_encrypted=keyed.vault.encrypt("{}", quarantine_payload("sms", "SMdave")),
            )
        )
    erased = residents.forget_address(keyed, "sms", DAVE, actor="test")
    assert erased.contributors == 1 and erased.messages >= 1
    with keyed.sessions() as session:
        for column in (Contributor.address_hash, InboundMessage.sender_hash):
            assert not session.scalars(select(column).where(column.in_(daves))).all()
        assert not session.scalars(
            select(QuarantinedMessage).where(QuarantinedMessage.sender_hash.in_(daves))
        ).all()


def test_a_message_stored_under_the_old_hash_in_the_race_finds_its_contributor(
    keyed: Runtime, key_file: Path, fake_twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch
):
    """The race of gateway.rotation: a webhook looked the sender up under the old hash, the
    rotation moved the person, the message is stored under the old hash all the same. Its
    processing finds the person's row under the new hash; the next pass moves the message."""
    assert send_sms(keyed, "PARC avant", sender=ALICE)
    rotate(keyed.engine, keyed.vault, key_file, settle=0)
    old, new = keyed.vault.root_lookup_hash("sms", ALICE), keyed.vault.lookup_hash("sms", ALICE)
    assert old != new
    real_choose = persons.choose
    monkeypatch.setattr(persons, "choose", lambda candidates, known: candidates[-1])
    assert send_sms(keyed, "PARC pendant", sender=ALICE)  # stored under the root's hash
    monkeypatch.setattr(persons, "choose", real_choose)
    with keyed.sessions() as session:
        assert (
            session.scalar(
                select(func.count(InboundMessage.id)).where(InboundMessage.sender_hash == old)
            )
            == 1
        )
        alices = session.scalars(select(Contributor)).all()
        assert [a.address_hash for a in alices] == [new]  # one contributor, under the new hash
        assert session.scalar(select(func.count(Contribution.id))) == 2
    report = Rotation(2, False)
    assert rehash(keyed.engine, keyed.vault, report) == 1  # the stray message, moved
    assert report.rehashed["inbound_messages.sender_hash"] == 1 and report.conflicts == 0
    assert hash_audit(keyed.engine, keyed.vault)["inbound_messages.sender_hash"] == {2: 2}
    assert rehash(keyed.engine, keyed.vault, report) == 0
