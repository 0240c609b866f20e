"""`gateway doctor`: each kind of trouble found, named, with what to do; nothing changed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from gateway import doctor
from gateway.settings import Settings
from tests.conftest import TEST_CAMPAIGNS


def by_name(checks: list[doctor.Check]) -> dict[str, doctor.Check]:
    return {check.name: check for check in checks}


def test_a_sound_installation_has_no_problem(settings: Settings) -> None:
    from gateway import db

    engine = db.make_engine(settings.effective_database_url)
    db.upgrade(engine)
    engine.dispose()
    found = by_name(doctor.run(settings, online=False))
    assert [c for c in found.values() if c.level == "problem"] == []
    assert found["database"].level == "ok" and "schema current" in found["database"].detail
    assert found["key"].detail == "SECRET_KEY given in the environment"
    assert found["campaigns"].detail.startswith("4 in ")
    # The test Redis has no worker registered: it works, but nothing would process messages.
    assert found["redis"].level == "warning" and found["redis"].fix == "start `gateway worker`"
    assert found["public url"].detail.endswith("(not tried)")


def test_each_trouble_is_named_with_its_fix(tmp_path: Path) -> None:
    key = tmp_path / "keys" / "agora.key"
    key.parent.mkdir()
    key.write_text("0123456789abcdef0123456789abcdef\n")
    key.chmod(0o644)
    settings = Settings(
        data_dir=str(tmp_path / "data"),
        secret_key_file=str(key),
        redis_url="redis://127.0.0.1:1/0",  # nothing listens there
        campaigns_dir=str(TEST_CAMPAIGNS),
        vosk_model=str(tmp_path / "no-model"),
        public_url="http://gateway.example.org",
    )
    (tmp_path / "data").mkdir()
    found = by_name(doctor.run(settings, online=False))
    assert found["key"].level == "problem" and found["key"].fix == f"chmod 600 {key}"
    assert found["database"].level == "problem"
    assert found["database"].fix == "run `gateway db upgrade`"  # no database yet
    assert found["redis"].level == "problem" and "unset REDIS_URL" in found["redis"].fix
    assert found["speech model (fr)"].level == "warning"
    assert found["speech model (fr)"].fix == (
        "run `gateway models install fr-small --sha256 HEX (or --allow-unpinned)`"
    )
    assert found["public url"].level == "problem" and "not https" in found["public url"].detail
    # Nothing was changed: no schema created, the key's mode as it was.
    assert key.stat().st_mode & 0o777 == 0o644
    assert not (tmp_path / "data" / "redis").exists()
    assert not (tmp_path / "data" / "gateway.sqlite3").exists()


def test_an_unreachable_database_and_a_loopback_url(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=str(tmp_path / "data"),
        secret_key="k" * 32,
        database_url="postgresql+psycopg://nobody:nothing@127.0.0.1:1/none",
        campaigns_dir=str(tmp_path / "none"),
        public_url="http://127.0.0.1:8080",
    )
    found = by_name(doctor.run(settings, online=True))
    assert found["database"].level == "problem"
    assert found["database"].detail.startswith("postgresql+psycopg: unreachable (")
    assert found["campaigns"].level == "warning"
    assert found["public url"].level == "warning" and "loopback" in found["public url"].detail


def test_the_command_exits_1_on_a_problem(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        {
            "GATEWAY_DATA_DIR": str(tmp_path / "data"),
            "GATEWAY_REDIS_URL": "redis://127.0.0.1:1/0",
            "GATEWAY_SECRET_KEY": "k" * 32,
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "doctor", "--offline"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("PROBLEM redis: unreachable (") for line in lines)
    assert lines[-1].startswith("2 problem(s), ")  # Redis, and the schema never created
    assert done.stderr == ""


def test_providers_credentials_are_tried_with_a_harmless_call(settings: Settings) -> None:
    from channels.telegram.tests.fake_api import FakeTelegram
    from channels.twilio.tests.fake_api import FakeTwilio

    local = settings.with_overrides(public_url="http://127.0.0.1:8080")  # nothing to reach
    with FakeTelegram() as telegram:
        bot = local.with_overrides(
            telegram_bot_token=telegram.token, telegram_api_base=telegram.base_url
        )
        found = by_name(doctor.run(bot))
        assert found["twilio"] == doctor.ok("twilio", "credentials accepted, account active")
        assert found["telegram"].level == "ok"
        assert found["telegram"].detail.startswith("token accepted: @")
        wrong = bot.with_overrides(telegram_bot_token="123456:wrong-token-for-the-test")
        refused = by_name(doctor.run(wrong))["telegram"]
        assert refused.level == "problem" and "TELEGRAM_BOT_TOKEN" in refused.fix
        assert "wrong-token" not in refused.detail + refused.fix
        assert telegram.token.split(":")[1] not in repr(doctor.run(bot))
    refused = by_name(doctor.run(local.with_overrides(twilio_auth_token="f" * 32)))["twilio"]
    assert refused.level == "problem" and refused.detail == "credentials refused (401)"
    with FakeTwilio() as twilio:
        twilio._state.account_status = "suspended"
        suspended = local.with_overrides(
            twilio_account_sid=twilio.account_sid,
            twilio_auth_token=twilio.auth_token,
            twilio_api_base=twilio.base_url,
        )
        assert by_name(doctor.run(suspended))["twilio"].detail == "account suspended"
    offline = by_name(doctor.run(local, online=False))
    assert offline["twilio"].detail == "configured (credentials not tried)"
