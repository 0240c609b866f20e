"""Console benchmark: the moderation pages a moderator waits for, on a busy campaign's queue.

    python bench/console.py [--contributions 20000] [--duration 8] [--concurrency 8] [--rounds 3]

Seeds a data folder with N contributions (SMS and voice with word-level transcripts, 5% of
them copies of one tract, a tenth already decided), starts `gateway serve` on embedded
defaults (SQLite, worker off), logs in through the login form, then loads with wrk (Debian
package `wrk`), alternating targets each round:

- `/healthz` (one SELECT 1 and one Redis PING): the baseline, in the same server;
- the queue as it opens (pending, grouped, 50 rows, counts per status);
- the queue searched for two words (accent-blind substring search over every contribution);
- one voice contribution's page (transcript word by word, conversation, log, redactions).

Reports the median over rounds of requests/s, p50 and p99 per target, and each page's
throughput as a ratio of the baseline's. Only loopback is used.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest import Result, _ms, free_port, start_gateway, stop, wait_ready

PASSWORD = "bench-password-long"  # noqa: S105 - a throwaway account for a local benchmark
WORDS = (
    "bancs arbres ombre école parc jeux enfants vélo piste trottoir lumière nuit bruit "
    "propreté poubelles fontaine toilettes kiosque marché bus tram horaires parking sécurité "
    "jardin potager pelouse chiens sport terrain basket foot skate fleurs eau chaleur été"
).split()
TRACT = "Non à la bétonisation du parc, gardons nos arbres et nos espaces verts !"


def seed(data_dir: Path, n: int) -> int:
    """Fill the database; returns the id of a voice contribution to open."""
    from sqlalchemy import select, update

    from gateway import campaigns
    from gateway.models import Campaign, Contribution, Contributor
    from gateway.moderation import accounts
    from gateway.privacy import contributor_address, new_contributor_id
    from gateway.references import next_reference
    from gateway.runtime import Runtime
    from gateway.settings import Settings

    rng = random.Random(42)
    runtime = Runtime.open(Settings(data_dir=str(data_dir)))
    now = datetime.now(UTC)
    voice_id = 0
    try:
        with runtime.sessions.begin() as session:
            campaigns.upsert(
                session, campaigns.read_files([runtime.settings.effective_campaigns_dir])
            )
            accounts.add_moderator(session, "bench", PASSWORD)
            parc = session.scalar(select(Campaign).where(Campaign.slug == "parc"))
            for i in range(n):
                number = f"+336{i:08d}"
                contributor = Contributor(
                    public_id=new_contributor_id(),
                    channel="sms",
                    address_hash=runtime.vault.lookup_hash("sms", number),
                    address_encrypted=runtime.vault.encrypt(
                        number,
                        contributor_address("sms", runtime.vault.lookup_hash("sms", number)),
                    ),
                )
                session.add(contributor)
                voice = i % 7 == 0
                text = TRACT if i % 20 == 0 else " ".join(rng.choices(WORDS, k=rng.randint(6, 40)))
                words = text.split()
                contribution = Contribution(
                    reference=next_reference(session, "PARC"),
                    campaign_id=parc.id if parc else None,
                    contributor=contributor,
                    channel="voice" if voice else "sms",
                    status=rng.choice(["published", "rejected"]) if i % 10 == 1 else "pending",
                    text=text,
                    transcript=text if voice else None,
                    transcription_status="done" if voice else None,
                    transcript_detail={
                        "text": text,
                        "model": "bench",
                        "language": "fr",
                        "duration": len(words) * 0.4,
                        "words": [
                            {
                                "word": w,
                                "start": k * 0.4,
                                "end": k * 0.4 + 0.35,
                                "confidence": rng.random(),
                            }
                            for k, w in enumerate(words)
                        ],
                    }
                    if voice
                    else None,
                    audio_path="audio/bench.wav" if voice else None,
                    audio_duration=len(words) * 0.4 if voice else None,
                    neighbourhood=rng.choice(["Parc Nord", "Parc Sud", "Centre", None]),
                    received_at=now - timedelta(minutes=n - i),
                    group_id=None,
                )
                session.add(contribution)
                if i % 500 == 499:
                    session.flush()
            session.flush()
            C = Contribution
            # Groups as the pipeline would set them: the tract's copies share the first one's.
            first_tract = session.scalar(select(C.id).where(C.text == TRACT).order_by(C.id))
            session.execute(update(C).values(group_id=C.id))
            session.execute(update(C).where(C.text == TRACT).values(group_id=first_tract))
            voice_id = int(
                session.scalar(select(C.id).where(C.channel == "voice").order_by(C.id.desc())) or 0
            )
    finally:
        runtime.close()
    return voice_id


def login(port: int) -> str:
    """Log in through the form; returns the Cookie header to send.

    Cookies are carried by hand: the bench's PUBLIC_URL is https, so the console marks them
    Secure, and a cookie jar would not send them back over the loopback's plain http."""
    from http.cookies import SimpleCookie

    base = f"http://127.0.0.1:{port}/moderation/login"
    with urllib.request.urlopen(base, timeout=60) as response:
        page = response.read().decode()
        jar = SimpleCookie()
        for header in response.headers.get_all("Set-Cookie") or []:
            jar.load(header)
    token = re.search(r'name="csrf_token"\s+value="([^"]+)"', page)
    if token is None:
        raise RuntimeError("no CSRF token on the login page")
    body = urllib.parse.urlencode(
        {"name": "bench", "password": PASSWORD, "csrf_token": token.group(1), "next": ""}
    ).encode()
    request = urllib.request.Request(
        base, data=body, headers={"Cookie": "; ".join(f"{k}={v.value}" for k, v in jar.items())}
    )

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        response = opener.open(request, timeout=60)
        headers = response.headers
    except urllib.error.HTTPError as redirect:  # the 303 after a successful login
        headers = redirect.headers
    session = SimpleCookie()
    for header in headers.get_all("Set-Cookie") or []:
        session.load(header)
    if "agora_session" not in session:
        raise RuntimeError("login failed")
    return f"agora_session={session['agora_session'].value}"


def load(url: str, cookie: str, concurrency: int, duration: int) -> Result:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{duration}s",
            "--latency",
            "-H",
            f"Cookie: {cookie}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    p50 = p99 = throughput = 0.0
    errors = 0
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
    return Result(throughput, p50, p99, errors)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--contributions", type=int, default=20000)
    parser.add_argument("--duration", type=int, default=8, help="seconds per run")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        voice_id = seed(data, args.contributions)
        port = free_port()
        gateway = start_gateway(port, str(data), worker=False, processes=1)
        targets = {
            "healthz (baseline)": "/healthz",
            "queue": "/moderation/queue",
            "queue search": "/moderation/queue?q=" + urllib.parse.quote("ecole velo"),
            "voice contribution": f"/moderation/contributions/{voice_id}",
        }
        try:
            wait_ready(port)
            results = rounds(port, targets, login(port), args)
        finally:
            stop(gateway)
    report(results, args)


def rounds(
    port: int, targets: dict[str, str], cookie: str, args: argparse.Namespace
) -> dict[str, list[Result]]:
    """A warm-up of each target, then ``args.rounds`` rounds alternating the targets."""
    results: dict[str, list[Result]] = {name: [] for name in targets}
    for path in targets.values():
        load(f"http://127.0.0.1:{port}{path}", cookie, args.concurrency, 1)
    for r in range(args.rounds):
        for name, path in targets.items():
            result = load(f"http://127.0.0.1:{port}{path}", cookie, args.concurrency, args.duration)
            results[name].append(result)
            print(
                f"round {r + 1} {name:<20} {result.throughput:8.1f} req/s  "
                f"p50 {result.p50_ms:7.1f} ms  p99 {result.p99_ms:7.1f} ms  "
                f"errors {result.errors}",
                flush=True,
            )
    return results


def report(results: dict[str, list[Result]], args: argparse.Namespace) -> None:
    """Medians per target and the ratio to the first target (the baseline, /healthz)."""
    print(
        f"\nmedians over {args.rounds} rounds of {args.duration} s, concurrency "
        f"{args.concurrency}, {args.contributions} contributions:"
    )
    print(f"{'target':<20} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'ratio':>7}")
    base = statistics.median(r.throughput for r in next(iter(results.values())))
    for name, rs in results.items():
        med = statistics.median(r.throughput for r in rs)
        print(
            f"{name:<20} {med:8.1f} {statistics.median(r.p50_ms for r in rs):8.1f} "
            f"{statistics.median(r.p99_ms for r in rs):8.1f} {sum(r.errors for r in rs):7d} "
            f"{(med / base if base else float('nan')):7.3f}"
        )


if __name__ == "__main__":
    main()
