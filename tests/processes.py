"""`gateway serve` and `gateway worker` as subprocesses, as an operator runs them: the kit the
end-to-end tests (tests/test_e2e_serve.py, the channels' own) and the fault suite (tests/faults/)
share. ``Gateway`` starts and stops the processes of one set-up and drives them with signed
webhooks; ``base_env`` is the environment of the embedded set-up around a fake Twilio."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from channels.twilio.tests.fake_api import FakeTwilio
from tests.fixtures import TEST_CAMPAIGNS, free_port
from tests.helpers import sign

GATEWAY = [sys.executable, "-m", "gateway.cli"]


class Gateway:
    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = env
        self.workdir = workdir
        self.port = int(env["GATEWAY_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """A gateway command as a process of this set-up (``env``: its own environment, e.g.
        another web process's port)."""
        log = open(self.workdir / f"{args[0]}-{len(self.processes)}.log", "wb")
        process = subprocess.Popen(
            [*GATEWAY, *args],
            env=env or self.env,
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        return process

    def wait_healthy(self, timeout: float = 60, url: str | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get((url or self.url) + "/healthz", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise AssertionError("gateway serve did not become healthy:\n" + self.logs())

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-4000:] for p in sorted(self.workdir.glob("*.log"))
        )

    def post_sms(
        self, form: dict[str, str], timeout: float = 10, url: str | None = None
    ) -> requests.Response:
        return self.post_signed("/webhooks/twilio/sms", form, timeout, url)

    def post_signed(
        self, path: str, form: dict[str, str], timeout: float = 10, url: str | None = None
    ) -> requests.Response:
        """A webhook signed as Twilio signs it, to this gateway or to ``url`` (another web
        process of the same set-up)."""
        signature = sign(
            self.env["GATEWAY_TWILIO_AUTH_TOKEN"], self.env["GATEWAY_PUBLIC_URL"] + path, form
        )
        return requests.post(
            (url or self.url) + path,
            data=form,
            timeout=timeout,
            headers={"X-Twilio-Signature": signature},
        )

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [*GATEWAY, *args],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def contributions(self) -> list[dict[str, object]]:
        return list(json.loads(self.cli("contributions", "list", "--json")))

    def wait_for_contributions(self, n: int, timeout: float = 180) -> list[dict[str, object]]:
        deadline = time.monotonic() + timeout
        found: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            found = self.contributions()
            if len(found) >= n:
                return found
            time.sleep(0.5)
        raise AssertionError(f"{len(found)} of {n} contributions:\n" + self.logs())

    def stop(self) -> None:
        """SIGTERM to every process, as systemd sends it. A worker must be gone within 10 s
        whatever it was doing (workers.runner); a web server may first finish open requests
        (aiohttp's shutdown_timeout, 10 s), then stops its own worker within the same 10 s."""
        signalled = time.monotonic()
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            within = 10.0 if "worker" in process.args else 25.0
            try:
                process.wait(max(0.1, signalled + within - time.monotonic()))
            except subprocess.TimeoutExpired as exc:
                process.kill()
                raise AssertionError(
                    f"a gateway process was still running {within:.0f} s after SIGTERM "
                    f"({' '.join(map(str, process.args[3:]))}):\n" + self.logs()
                ) from exc


def base_env(tmp_path: Path, fake: FakeTwilio) -> dict[str, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        {
            "GATEWAY_DATA_DIR": str(tmp_path / "data"),
            "GATEWAY_PORT": str(port),
            "GATEWAY_PUBLIC_URL": "https://agora.example.org",
            "GATEWAY_CAMPAIGNS_DIR": str(TEST_CAMPAIGNS),
            "GATEWAY_TWILIO_ACCOUNT_SID": fake.account_sid,
            "GATEWAY_TWILIO_AUTH_TOKEN": fake.auth_token,
            "GATEWAY_TWILIO_API_BASE": fake.base_url,
            "GATEWAY_SWEEP_GRACE_SECONDS": "1",
            "GATEWAY_SWEEP_INTERVAL_SECONDS": "2",
            # Paced as a short code is (docs/operations.md, "Outbound pacing"): the pacing code
            # runs in every process test, without a burst's receipts taking minutes.
            "GATEWAY_TWILIO_SEGMENTS_PER_SECOND": "100",
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        }
    )
    return env
