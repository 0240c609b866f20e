"""Structured logs (GATEWAY_LOG_FORMAT=json): one JSON object a line, the same privacy rules as
the text lines. First the formatter in this process, then `gateway serve` as an operator runs
it, its whole output read by a collector would."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from channels.twilio.tests.fake_api import FakeTwilio
from gateway import logs
from gateway.settings import Settings, SettingsError
from tests.processes import Gateway, base_env

PHONE = "+33612345678"
EMAIL = "camille.durand@example.org"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_each_line_is_an_object_with_nothing_personal(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure("INFO", json_lines=True)
    log = logging.getLogger("gateway.test")
    log.info("reçu de %s pour l'opération « Été »", PHONE)
    try:
        raise ValueError(f"refusé: {EMAIL}")
    except ValueError:
        log.exception("échec de l'envoi")
    log.debug("not at INFO")

    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "INFO" and first["logger"] == "gateway.test"
    assert first["message"] == "reçu de <phone> pour l'opération « Été »"  # text as written
    assert first["time"].endswith("+00:00") and isinstance(first["pid"], int)
    assert second["level"] == "ERROR" and second["message"] == "échec de l'envoi"
    assert "ValueError: refusé: <email>" in second["exception"]
    assert "Traceback" in second["exception"]
    assert PHONE not in "".join(lines) and EMAIL not in "".join(lines)


def test_the_setting_takes_text_or_json_only() -> None:
    assert Settings.load({}).log_format == "text"
    assert Settings.load({"GATEWAY_LOG_FORMAT": "json"}).log_format == "json"
    with pytest.raises(SettingsError, match="GATEWAY_LOG_FORMAT"):
        Settings.load({"GATEWAY_LOG_FORMAT": "yaml"})


def test_serve_logs_objects_only_and_never_the_sender(tmp_path: Path) -> None:
    """The banner, the speech-model lines, the worker's and the webhook's lines: all objects,
    none with the resident's number, from start to SIGTERM."""
    with FakeTwilio() as fake:
        env = base_env(tmp_path, fake) | {"GATEWAY_LOG_FORMAT": "json"}
        gateway = Gateway(env, tmp_path)
        gateway.start("serve")
        try:
            gateway.wait_healthy()
            form = {
                "MessageSid": "SM" + "4" * 32,
                "AccountSid": fake.account_sid,
                "From": PHONE,
                "To": "+33700000000",
                "Body": "PARC Des bancs à l'ombre, merci",
            }
            assert gateway.post_sms(form).status_code == 200
            gateway.wait_for_contributions(1)
            fake.wait_for_messages(1, timeout=60)
        finally:
            gateway.stop()
    output = (tmp_path / "serve-0.log").read_text()
    entries = [json.loads(line) for line in output.splitlines() if line.strip()]
    messages = [entry["message"] for entry in entries]
    assert any(m.startswith("Agora gateway on http://") for m in messages), messages
    assert any(m.startswith("speech (") for m in messages), messages
    assert {"time", "level", "logger", "message", "pid"} <= set(entries[0])
    # Each send in one line of ours, not the provider library's ten-line request dump.
    assert any(m.startswith("outbound ") and "sent via twilio" in m for m in messages)
    assert not [e for e in entries if e["logger"].startswith("twilio")]
    assert PHONE not in output and PHONE[1:] not in output
