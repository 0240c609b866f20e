"""The moderation queue as moderators filter it, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import update

from gateway.models import Contribution
from gateway.moderation import actions, queries
from gateway.moderation.accounts import Actor
from gateway.moderation.queries import QueueFilter
from gateway.runtime import Runtime
from tests.helpers import send_sms
from tests.moderation.test_actions import file_sms, file_voice

PARIS = ZoneInfo("Europe/Paris")
ALICE = Actor(name="alice", role="moderator")


def page(runtime: Runtime, **params: str) -> queries.QueuePage:
    with runtime.sessions() as session:
        return queries.queue(session, QueueFilter.from_params(params), PARIS)


def refs(result: queries.QueuePage) -> list[str]:
    return [row.contribution.reference for row in result.rows]


def test_filters_search_counts_and_groups(runtime: Runtime):
    bancs = file_sms(runtime, "Plus de bancs près de l'école", "+33640000001")
    arbres = file_sms(runtime, "Des arbres et de l'ombre", "+33640000002")
    voice = file_voice(runtime, "+33640000003", "il faut réparer les jeux")
    tract = "Non à la bétonisation du parc, gardons nos arbres et nos espaces verts !"
    copies = [file_sms(runtime, tract, f"+3364000001{i}") for i in range(3)]
    actions.decide(runtime, ALICE, [arbres.id], "publish")
    actions.classify(runtime, ALICE, bancs.id, category="proposal", neighbourhood="Parc Sud")

    pending = page(runtime)
    assert pending.counts == {"pending": 5, "published": 1, "rejected": 0, "spam": 0, "all": 6}
    # Grouped by default: the tract is one row showing its three senders.
    assert pending.total == 3 and pending.contributions == 5
    sizes = {row.contribution.id: row.group_size for row in pending.rows}
    assert sizes[copies[0].id] == 3 and sizes[bancs.id] == 1
    assert page(runtime, grouped="0").total == 5
    assert refs(page(runtime, group=str(copies[0].id), grouped="0")) == [
        c.reference for c in copies
    ]

    assert [r.contribution.id for r in page(runtime, channel="voice").rows] == [voice]
    assert [r.contribution.id for r in page(runtime, audio="1").rows] == [voice]
    assert voice not in [r.contribution.id for r in page(runtime, audio="0").rows]
    assert refs(page(runtime, status="published")) == [arbres.reference]
    assert page(runtime, status="all").contributions == 6
    assert refs(page(runtime, category="proposal")) == [bancs.reference]
    assert refs(page(runtime, neighbourhood="Parc Sud")) == [bancs.reference]
    # Search is blind to case and accents, over text and transcript, every word required.
    assert refs(page(runtime, q="ECOLE bancs")) == [bancs.reference]
    assert [r.contribution.id for r in page(runtime, q="réparer").rows] == [voice]
    assert page(runtime, q="bancs piscine").total == 0
    assert page(runtime, q="100%_").total == 0  # LIKE wildcards are literal
    # Malformed parameters are ignored, never an error.
    assert page(runtime, status="bogus", page="-3", per_page="x", audio="maybe").total == 4


def test_dates_are_local_days_and_pages_follow_each_other(runtime: Runtime):
    ideas = ["Des bancs", "Un kiosque", "Des toilettes", "Une fontaine", "Un potager partagé"]
    for i, idea in enumerate(ideas):
        file_sms(runtime, idea, f"+3365000000{i}")
    with runtime.sessions.begin() as session:
        # 23:30 in Paris on 1 March is 22:30 UTC: it belongs to 1 March, not 2 March.
        session.execute(
            update(Contribution)
            .where(Contribution.reference == "PARC-0001")
            .values(received_at=datetime(2026, 3, 1, 22, 30, tzinfo=UTC))
        )
    assert refs(page(runtime, **{"from": "2026-03-01", "to": "2026-03-01"})) == ["PARC-0001"]
    assert page(runtime, **{"from": "2026-03-02", "to": "2026-03-02"}).total == 0
    first = page(runtime, per_page="2")
    second = page(runtime, per_page="2", page="2")
    third = page(runtime, per_page="2", page="3")
    assert first.pages == 3 and len(third.rows) == 1
    seen = refs(first) + refs(second) + refs(third)
    assert sorted(seen) == [f"PARC-000{i}" for i in range(1, 6)]
    assert refs(page(runtime, sort="newest"))[0] == "PARC-0005"
    assert QueueFilter.from_params({"from": "2026-03-01", "q": "x"}).to_params(page=2) == {
        "from": "2026-03-01",
        "q": "x",
        "page": "2",
    }


def test_neighbours_conversation_log_and_dashboard(runtime: Runtime):
    first = file_sms(runtime, "Premier message sur le parc", "+33660000001")
    send_sms(runtime, "2", "+33660000001", "+33100000001")  # answers the neighbourhood question
    second = file_sms(runtime, "Deuxième message sur le parc", "+33660000002")
    actions.decide(runtime, ALICE, [second.id], "reject", reason="Doublon")
    with runtime.sessions() as session:
        c1 = session.get(Contribution, first.id)
        assert c1 is not None
        f = QueueFilter(status=None)
        assert queries.neighbours(session, c1, f, PARIS) == (None, second.id)
        lines = queries.conversation(session, c1)
        assert [line.incoming for line in lines][:2] == [True, False]
        assert any(line.current and "Premier message" in line.text for line in lines)
        assert any(not line.incoming and "PARC-0001" in line.text for line in lines)
        log = queries.log_page(session)
        assert [(e.action, ref) for e, ref in log.events] == [("reject", second.reference)]
        board = queries.dashboard(session, "parc", PARIS, datetime.now(UTC))
        assert board.per_status == {"pending": 1, "published": 0, "rejected": 1, "spam": 0}
        assert dict(board.per_channel) == {"sms": 2}
        assert board.waiting == 1 and board.oldest_waiting is not None
        assert board.oldest_waiting < timedelta(minutes=5)
        assert sum(n for _, n in board.per_day) == 2
        assert board.per_day[-1][0] == datetime.now(PARIS).date()
        assert isinstance(board.per_day[0][0], date)
        assert dict(board.per_neighbourhood).get("Parc Sud") == 1
        changed = queries.changed_since(session, datetime.now(UTC) - timedelta(minutes=5))
        assert {c.id for c in changed} == {first.id, second.id}
