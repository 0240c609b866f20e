"""Campaign files as an import and export format: what ``gateway campaigns export`` writes,
``gateway campaigns load`` reads back unchanged; idempotent by slug."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select, text

from gateway import campaigns
from gateway.models import Campaign
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.web import load_campaigns
from tests.conftest import TEST_CAMPAIGNS
from tests.test_cli import run  # noqa: F401 (the fixture)

# Every key a campaign file may have, set to something other than its default.
QUAIS = """\
slug: quais
title: Aménagement des quais
question: "Que voulez-vous sur les quais : bancs, ombre ?"
keywords: [QUAIS, SEINE]
status: open
phone_numbers: ["+33100000077"]
neighbourhoods: [Rives, Centre]
themes: [Ombre, Bancs]
reference_prefix: QS
language: en
voice:
  greeting: Bienvenue sur la ligne des quais.
  audio: https://city.example.org/quais.mp3
  sms_receipt: false
publication:
  rejected_text: hidden
decidim:
  component: 12
closes_at: 2027-03-31
"""


def _load(runtime: Runtime, paths: list[Path], keep_edited: bool = False) -> dict[str, str]:
    specs = campaigns.read_files(paths, runtime.settings.timezone)
    with runtime.sessions.begin() as session:
        return dict(campaigns.upsert(session, specs, keep_edited=keep_edited))


def test_load_export_load_is_unchanged(runtime: Runtime, tmp_path: Path):
    (tmp_path / "quais.yaml").write_text(QUAIS, encoding="utf-8")
    assert _load(runtime, [tmp_path / "quais.yaml"]) == {"quais": "created"}
    with runtime.sessions() as session:
        quais = session.scalar(select(Campaign).where(Campaign.slug == "quais"))
        assert quais is not None and quais.closes_at is not None
        assert quais.closes_at.isoformat() == "2027-03-31T22:00:00+00:00"  # Paris, summer
        written = campaigns.export(session, tmp_path / "out")
        one_file = campaigns.export(session, tmp_path / "all.yaml")
    assert sorted(p.name for p in written) == [
        "budget.yaml",
        "ecoles.yaml",
        "parc.yaml",
        "quais.yaml",
        "velo.yaml",
    ]
    everything = {"budget", "ecoles", "parc", "quais", "velo"}
    assert _load(runtime, [tmp_path / "out"]) == dict.fromkeys(everything, "unchanged")
    assert _load(runtime, one_file) == dict.fromkeys(everything, "unchanged")
    exported = yaml.safe_load((tmp_path / "out" / "quais.yaml").read_text(encoding="utf-8"))
    assert exported["voice"] == {
        "greeting": "Bienvenue sur la ligne des quais.",
        "audio": "https://city.example.org/quais.mp3",
        "sms_receipt": False,
    }
    assert exported["closes_at"] == "2027-04-01T00:00:00+02:00"  # the city's time
    # A changed file is an update, by slug, and only that campaign's.
    (tmp_path / "out" / "quais.yaml").write_text(
        QUAIS.replace("closes_at: 2027-03-31", "closes_at: 2027-04-30"), encoding="utf-8"
    )
    results = _load(runtime, [tmp_path / "out"])
    assert results.pop("quais") == "updated"
    assert set(results.values()) == {"unchanged"}


def test_the_start_up_load_keeps_what_an_admin_edited(runtime: Runtime, tmp_path: Path):
    """A campaign saved from the console or the API is the admin's: the campaign folder,
    loaded at every start, does not undo it. `gateway campaigns load` (explicit) does."""
    with runtime.sessions.begin() as session:
        parc = session.scalar(select(Campaign).where(Campaign.slug == "parc"))
        assert parc is not None
        parc.title, parc.source = "Le Parc, revu", "console"
    results = _load(runtime, [TEST_CAMPAIGNS], keep_edited=True)
    assert results["parc"] == "kept" and results["budget"] == "unchanged"
    with runtime.sessions() as session:
        assert session.scalar(select(Campaign.title).where(Campaign.slug == "parc")) == (
            "Le Parc, revu"
        )
    assert _load(runtime, [TEST_CAMPAIGNS])["parc"] == "updated"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ("phone_numbers: ['01 00 00 00 77']", "bad_phone"),
        ("language: de", "bad_language"),
        ("closes_at: demain", "bad_closes_at"),
        ("keywords: [PARC]", "keyword_taken"),
    ],
)
def test_a_refused_file_changes_nothing(runtime: Runtime, tmp_path: Path, change: str, code: str):
    key = change.split(":")[0]
    lines = [line for line in QUAIS.splitlines() if not line.startswith(f"{key}:")]
    (tmp_path / "quais.yaml").write_text("\n".join([*lines, change]), encoding="utf-8")
    with pytest.raises(campaigns.CampaignFileError) as refused:
        _load(runtime, [tmp_path / "quais.yaml"])
    assert refused.value.code == code
    with runtime.sessions() as session:
        assert session.scalar(select(Campaign).where(Campaign.slug == "quais")) is None


def test_the_commands_round_trip(run, tmp_path: Path):  # noqa: F811
    (tmp_path / "quais.yaml").write_text(QUAIS, encoding="utf-8")
    run("campaigns", "load", str(TEST_CAMPAIGNS), str(tmp_path / "quais.yaml"))
    out = run("campaigns", "export", "--output", str(tmp_path / "exported")).stdout
    assert len(out.splitlines()) == 5
    again = run("campaigns", "load", str(tmp_path / "exported")).stdout
    assert sorted(again.splitlines()) == [
        f"{slug}: unchanged" for slug in ("budget", "ecoles", "parc", "quais", "velo")
    ]
    printed = list(yaml.safe_load_all(run("campaigns", "export").stdout))
    assert [c["slug"] for c in printed] == ["budget", "ecoles", "parc", "quais", "velo"]


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_web_processes_loading_the_folder_at_once_on_a_new_database_both_start(
    settings: Settings, caplog: pytest.LogCaptureFixture
):
    """Two `gateway serve` started at the same moment on a database without the campaigns
    (found by tests/test_city_scale.py): both find none and insert them; the one that commits
    second must load again, not fail to start. The race is made certain: the first process's
    insert is held uncommitted until the second waits on its unique key."""
    first, second = Runtime.open(settings), Runtime.open(settings)
    failed: list[BaseException] = []

    def start_second() -> None:
        try:
            load_campaigns(second)
        except BaseException as exc:
            failed.append(exc)

    try:
        specs = campaigns.read_files([TEST_CAMPAIGNS], settings.timezone)
        thread = threading.Thread(target=start_second)
        with caplog.at_level(logging.INFO, logger="gateway.web"):
            with first.sessions.begin() as session:
                campaigns.upsert(session, specs, first, keep_edited=True)
                session.flush()  # inserted, not committed
                thread.start()
                deadline = time.monotonic() + 30
                while not _waits_on_a_lock(first) and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert _waits_on_a_lock(first), "the second load never met the first one's insert"
            thread.join(30)  # the first commits as its block ends
        assert not thread.is_alive()
        assert failed == []
        assert "created meanwhile by another process" in caplog.text
        with first.sessions() as session:
            slugs = sorted(session.scalars(select(Campaign.slug)))
        assert slugs == sorted(s.slug for s in specs)
    finally:
        first.close()
        second.close()


def _waits_on_a_lock(runtime: Runtime) -> bool:
    with runtime.sessions() as session:
        waiting = session.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return bool(waiting)
