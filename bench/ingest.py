"""Ingest benchmark: signed Twilio SMS webhooks at concurrency 50 against `gateway serve`,
and in the same run the same load against a bare aiohttp handler answering the same TwiML.

    python bench/ingest.py [--duration 10] [--concurrency 50] [--rounds 3] [--worker]
                           [--processes N] [--bare-processes N]

The load comes from wrk (Debian package `wrk`), a C load generator on one thread, so that the
client is not what is measured.

With ``--processes N`` the gateway runs N pre-forked web processes on one socket, and so does
the bare handler (``--bare-processes``, N by default): two processes against two.

Reports, per target, the median over rounds of throughput, p50 and p99 latency and the CPU
time its processes spent per request (the gateway's embedded Redis included), the ratio of the
gateway's throughput to the bare handler's, and the same ratio in CPU per request (which moves
much less than throughput when other work shares the machine). Rounds alternate between the
two targets so that a noisy neighbour on a shared machine hits both alike. The gateway runs on
embedded defaults (SQLite + embedded Redis); by default without its in-process worker, so that
the figure is ingest's own (store + enqueue); `--worker` measures it with the worker running
too.
Only loopback is used.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-auth-token"  # noqa: S105 - a throwaway token for a local benchmark
PUBLIC_URL = "https://bench.example.org"
PATH = "/webhooks/twilio/sms"

BARE = textwrap.dedent(
    """
    import os, socket, sys
    from aiohttp import web
    TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
    async def handler(request):
        await request.post()
        return web.Response(text=TWIML, content_type="text/xml")
    def serve(sock):
        app = web.Application()
        app.router.add_post("/webhooks/twilio/sms", handler)
        app.router.add_get("/healthz", lambda r: web.Response(text="ok"))
        try:  # the same event loop as `gateway serve`, so that the ratio compares like with like
            import uvloop
            loop = uvloop.new_event_loop()
        except ImportError:
            import asyncio
            loop = asyncio.new_event_loop()
        web.run_app(app, sock=sock, print=None, access_log=None, loop=loop)
    # As `gateway serve --processes N` does: one listening socket, N pre-forked processes.
    port, processes = int(sys.argv[1]), int(sys.argv[2])
    sock = socket.create_server(("127.0.0.1", port), backlog=2048)
    children = []
    for _ in range(processes - 1):
        pid = os.fork()
        if pid == 0:
            serve(sock)
            os._exit(0)
        children.append(pid)
    try:
        serve(sock)
    finally:
        for pid in children:
            os.kill(pid, 15)
            os.waitpid(pid, 0)
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def forms(n: int, tag: str) -> list[tuple[dict[str, str], str]]:
    validator = RequestValidator(TOKEN)
    out = []
    for i in range(n):
        # A real MessageSid's shape (SM and 32 hex digits): the webhook refuses any other.
        sid = "SM" + hashlib.md5(f"{tag}-{i}".encode()).hexdigest()  # noqa: S324 - an id
        form = {
            "MessageSid": sid,
            "SmsSid": sid,
            "AccountSid": "AC" + "0" * 32,
            "From": f"+336{i % 5000:08d}",
            "To": "+33100000001",
            "NumMedia": "0",
            "Body": f"PARC Idée numéro {i} : plus de bancs et d'arbres",
            "ApiVersion": "2010-04-01",
        }
        out.append((form, validator.compute_signature(PUBLIC_URL + PATH, form)))
    return out


@dataclass
class Result:
    throughput: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_ms: float = 0.0  # the target's processes' CPU time per request answered


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and of its children (Linux /proc), 0 if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except (OSError, IndexError, ValueError):
        return 0.0
    return own + sum(_cpu_seconds(int(child)) for child in children)


def cpu_of(pids: list[int]) -> float:
    return sum(_cpu_seconds(pid) for pid in pids)


LUA = """
local requests, i = {}, 0
function init(args)
  for line in io.lines(args[1]) do
    local signature, body = line:match("([^\t]+)\t(.*)")
    requests[#requests + 1] = wrk.format("POST", "/webhooks/twilio/sms",
      {["Content-Type"] = "application/x-www-form-urlencoded",
       ["X-Twilio-Signature"] = signature}, body)
  end
end
function request()
  i = i % #requests + 1
  return requests[i]
end
"""


def _ms(value: str) -> float:
    units = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    for unit in ("us", "ms", "s"):
        if value.endswith(unit):
            return float(value[: -len(unit)]) * units[unit]
    return float(value)


def load(
    url: str,
    payloads: list[tuple[dict[str, str], str]],
    concurrency: int,
    duration: int,
    workdir: Path,
) -> Result:
    """One wrk run (C load generator, one thread) cycling through pre-signed requests."""
    from urllib.parse import urlencode

    requests_file = workdir / "requests.tsv"
    requests_file.write_text("\n".join(f"{sig}\t{urlencode(form)}" for form, sig in payloads))
    script = workdir / "requests.lua"
    script.write_text(LUA)
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{duration}s",
            "--latency",
            "-s",
            str(script),
            url,
            "--",
            str(requests_file),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    p50 = p99 = 0.0
    errors = 0
    throughput = 0.0
    for line in out.splitlines():
        parts = line.split()
        if parts[:1] == ["50%"]:
            p50 = _ms(parts[1])
        elif parts[:1] == ["99%"]:
            p99 = _ms(parts[1])
        elif line.startswith("Requests/sec:"):
            throughput = float(parts[1])
        elif "Non-2xx" in line:
            errors += int(parts[-1])
        elif "Socket errors" in line:
            errors += sum(int(x.rstrip(",")) for x in parts if x.rstrip(",").isdigit())
    return Result(throughput, p50, p99, errors)


def measured(
    url: str,
    payloads: list[tuple[dict[str, str], str]],
    concurrency: int,
    duration: int,
    workdir: Path,
    pids: list[int],
) -> Result:
    """``load``, with the CPU time the target's processes spent per request answered: on a
    machine shared with other work the throughputs move with the neighbours' load, the CPU a
    request costs much less."""
    before = cpu_of(pids)
    result = load(url, payloads, concurrency, duration, workdir)
    spent = cpu_of(pids) - before
    answered = result.throughput * duration
    result.cpu_ms = 1000 * spent / answered if answered else 0.0
    return result


def wait_ready(port: int, timeout: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing ready on port {port}")


def start_gateway(
    port: int, data_dir: str, worker: bool, processes: int
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        {
            "GATEWAY_DATA_DIR": data_dir,
            "GATEWAY_PUBLIC_URL": PUBLIC_URL,
            "GATEWAY_TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
            "GATEWAY_TWILIO_AUTH_TOKEN": TOKEN,
            "GATEWAY_TWILIO_API_BASE": "http://127.0.0.1:9",  # replies fail fast, never leave
            "GATEWAY_EMBEDDED_WORKER": "true" if worker else "false",
            "GATEWAY_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
        }
    )
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "serve",
            "--port",
            str(port),
            "--processes",
            str(processes),
        ],
        env=env,
        cwd=ROOT,
        stderr=subprocess.DEVNULL,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=40000,
        help="distinct pre-signed messages per round (more than a round sends)",
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="gateway serve --processes (web processes sharing the port)",
    )
    parser.add_argument(
        "--bare-processes",
        type=int,
        default=None,
        help="processes of the bare aiohttp baseline (default: as many as --processes)",
    )
    parser.add_argument(
        "--worker", action="store_true", help="run the gateway's in-process worker during the load"
    )
    args = parser.parse_args()
    bare_processes = args.bare_processes or args.processes

    results: dict[str, list[Result]] = {"bare aiohttp": [], "gateway serve": []}
    with tempfile.TemporaryDirectory() as tmp:
        bare_port, gw_port = free_port(), free_port()
        bare = subprocess.Popen([sys.executable, "-c", BARE, str(bare_port), str(bare_processes)])
        gateway = start_gateway(gw_port, str(Path(tmp) / "data"), args.worker, args.processes)
        try:
            wait_ready(bare_port)
            wait_ready(gw_port)
            work = Path(tmp)
            warm = forms(500, "w")
            load(f"http://127.0.0.1:{bare_port}", warm, args.concurrency, 2, work)
            load(f"http://127.0.0.1:{gw_port}", warm, args.concurrency, 2, work)
            for r in range(args.rounds):
                # Unique MessageSids for the whole round: every request is a new message.
                payloads = forms(args.requests, f"r{r}")
                # The gateway's processes and its embedded Redis (daemonised, not a child).
                redis_pid = Path(tmp) / "data" / "redis" / "redis.pid"
                gateway_pids = [gateway.pid]
                if redis_pid.exists():
                    gateway_pids.append(int(redis_pid.read_text().strip()))
                targets = (
                    ("bare aiohttp", bare_port, [bare.pid]),
                    ("gateway serve", gw_port, gateway_pids),
                )
                for name, port, pids in targets:
                    result = measured(
                        f"http://127.0.0.1:{port}",
                        payloads,
                        args.concurrency,
                        args.duration,
                        work,
                        pids,
                    )
                    results[name].append(result)
                    print(
                        f"round {r + 1} {name:<14} {result.throughput:8.0f} req/s  "
                        f"p50 {result.p50_ms:6.1f} ms  p99 {result.p99_ms:6.1f} ms  "
                        f"cpu {result.cpu_ms:5.3f} ms/req  errors {result.errors}",
                        flush=True,
                    )
        finally:
            stop(gateway)
            stop(bare)

    print(
        f"\nmedians over {args.rounds} rounds of {args.duration} s, "
        f"concurrency {args.concurrency}, worker {'on' if args.worker else 'off'}, "
        f"gateway processes {args.processes}, bare processes {bare_processes}:"
    )
    print(
        f"{'target':<14} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'cpu ms/req':>11} {'errors':>7}"
    )
    med: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for name, rs in results.items():
        med[name] = statistics.median(r.throughput for r in rs)
        cpu[name] = statistics.median(r.cpu_ms for r in rs)
        print(
            f"{name:<14} {med[name]:8.0f} {statistics.median(r.p50_ms for r in rs):8.1f} "
            f"{statistics.median(r.p99_ms for r in rs):8.1f} {cpu[name]:11.3f} "
            f"{sum(r.errors for r in rs):7d}"
        )
    print(f"ratio gateway/bare: {med['gateway serve'] / med['bare aiohttp']:.2f}")
    if cpu["gateway serve"]:
        print(
            "ratio of CPU per request, bare/gateway: "
            f"{cpu['bare aiohttp'] / cpu['gateway serve']:.2f}"
        )


if __name__ == "__main__":
    main()
