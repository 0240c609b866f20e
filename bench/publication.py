"""Public pages benchmark: what anyone on the internet can ask of a busy campaign.

    python bench/publication.py [--contributions N] [--duration S] [--concurrency C] [--rounds R]

Seeds a data folder as bench/console.py does (N contributions, SMS and voice), then
publishes nine in ten of them (public text, a third answered) and rejects the rest with a
reason, starts `gateway serve` on embedded defaults (SQLite, worker off) and loads with wrk
(Debian package `wrk`), alternating targets each round:

- `/healthz` (one SELECT 1 and one Redis PING): the baseline, in the same server;
- the campaigns index;
- the campaign page as it opens (50 contributions, the filters' choices, the counts);
- a page deep in the list (page 300) and a filtered page (voice, answered "accepted");
- the open-data download (`contributions.csv`, every public contribution).

No login: these pages are public, so what one costs is what an anonymous flood costs.
Reports the median over rounds of requests/s, p50 and p99 per target, and each target's
throughput as a ratio of the baseline's. Only loopback is used.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from console import report, rounds, seed
from ingest import free_port, start_gateway, stop, wait_ready


def publish(data_dir: Path) -> None:
    """Nine in ten published (a third of those answered), the rest rejected with a reason."""
    from sqlalchemy import update

    from gateway.models import Contribution as C
    from gateway.runtime import Runtime
    from gateway.settings import Settings

    runtime = Runtime.open(Settings(data_dir=str(data_dir)))
    now = datetime.now(UTC)
    try:
        with runtime.sessions.begin() as session:
            session.execute(
                update(C).values(status="published", public_text=C.text, moderated_at=now)
            )
            session.execute(
                update(C)
                .where(C.id % 10 == 3)
                .values(status="rejected", decision_reason="Hors sujet pour cette consultation")
            )
            session.execute(
                update(C)
                .where(C.status == "published", C.id % 3 == 0)
                .values(
                    answer_state="accepted",
                    answer_text="La ville retient cette proposition pour le budget 2027.",
                    answered_at=now,
                )
            )
    finally:
        runtime.close()


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
        seed(data, args.contributions)
        publish(data)
        port = free_port()
        gateway = start_gateway(port, str(data), worker=False, processes=1)
        targets = {
            "healthz (baseline)": "/healthz",
            "campaigns index": "/campaigns",
            "campaign page": "/campaigns/parc",
            "page 300": "/campaigns/parc?page=300",
            "filtered page": "/campaigns/parc?channel=voice&state=accepted",
            "open data (csv)": "/campaigns/parc/contributions.csv",
        }
        try:
            wait_ready(port)
            results = rounds(port, targets, "", args)  # no login: these pages are public
        finally:
            stop(gateway)
    report(results, args)


if __name__ == "__main__":
    main()
