"""Direct publication to Decidim 0.32+ against a fake Decidim that answers as the real one
(tests/fakes/decidim_api.py): success, refusals, token expiry, interrupted runs, dry run, and
nothing personal sent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from gateway.models import Campaign, Contribution
from gateway.publication import decidim_api
from gateway.publication.decidim_api import DecidimClient, DecidimError
from gateway.runtime import Runtime
from gateway.settings import Settings
from tests.console import seed
from tests.fakes.decidim_api import FakeDecidim
from tests.helpers import cli_env, runtime_with
from tests.privacy_scan import phone_forms

COMPONENT = 7
NUMBER = "+33612345678"
ORIGINAL = "Je suis Marie Dupont au 06 12 34 56 78, il faut plus de bancs au parc"
PUBLIC = "Il faut plus de bancs au parc, près de l'aire de jeux."


@pytest.fixture
def fake() -> Iterator[FakeDecidim]:
    with FakeDecidim() as server:
        yield server


def decidim_settings(fake: FakeDecidim) -> dict[str, str]:
    return {
        "decidim_url": fake.base_url,
        "decidim_api_key": fake.key,
        "decidim_api_secret": fake.secret,
    }


@pytest.fixture
def rt(settings: Settings, fake: FakeDecidim) -> Iterator[Runtime]:
    runtime = runtime_with(settings, **decidim_settings(fake))
    with runtime.sessions.begin() as session:
        session.execute(
            update(Campaign).where(Campaign.slug == "parc").values(decidim_component=COMPONENT)
        )
    yield runtime
    runtime.close()


_numbers = iter(range(10, 100))


def published(rt: Runtime, public: str = PUBLIC, **fields: Any) -> int:
    """A published contribution whose author has a phone number (NUMBER for the first)."""
    number = fields.pop("number", None) or f"+336123456{next(_numbers)}"
    person = seed.contributor(rt, number)
    return seed.contribution(
        rt,
        fields.pop("text", ORIGINAL),
        person=person,
        status="published",
        public_text=public,
        neighbourhood=fields.pop("neighbourhood", "Parc Nord"),
        received_at=fields.pop("received_at", datetime(2026, 3, 12, 17, 4, tzinfo=UTC)),
        **fields,
    )


def publish(rt: Runtime, **options: Any) -> decidim_api.Report:
    options.setdefault("sleep", lambda seconds: None)
    return decidim_api.publish_campaign(rt, "parc", **options)


def state(rt: Runtime, cid: int) -> tuple[str | None, datetime | None, str | None]:
    with rt.sessions() as session:
        c = session.get(Contribution, cid)
        assert c is not None
        return c.decidim_id, c.decidim_published_at, c.decidim_error


def creates(fake: FakeDecidim) -> list[dict[str, Any]]:
    return [
        json.loads(r["body"])
        for r in fake.requests
        if r["path"] == "/api" and "createProposal" in r["body"]
    ]


# -- success -------------------------------------------------------------------------------


def test_published_contributions_become_proposals_once(rt: Runtime, fake: FakeDecidim):
    first = published(rt)
    second = published(rt, "Une piste cyclable rue Haute, le long du parc.", channel="telegram")
    pending = seed.contribution(rt, "En attente de modération, pas publiée")
    rejected = seed.contribution(
        rt,
        "Hors sujet, refusée par les modérateurs",
        status="rejected",
        decision_reason="hors sujet",
    )

    report = publish(rt)

    assert report.version == "0.32.1" and report.ok
    assert [o.action for o in report.outcomes] == ["published", "published"]
    proposals = fake.proposals
    assert len(proposals) == 2
    ids = {state(rt, first)[0], state(rt, second)[0]}
    assert ids == {p["id"] for p in proposals}
    for cid in (first, second):
        decidim_id, sent_at, error = state(rt, cid)
        assert decidim_id and sent_at is not None and error is None
    for cid in (pending, rejected):
        assert state(rt, cid) == (None, None, None)
    # The body: the public text, where it comes from, and the reference that ends it.
    with rt.sessions() as session:
        reference = session.get(Contribution, first).reference  # type: ignore[union-attr]
    body = next(p["body"]["fr"] for p in proposals if p["id"] == state(rt, first)[0])
    assert body.startswith(PUBLIC)
    assert "Recueilli par SMS le 12 mars à 18 h 04, quartier Parc Nord" in body
    assert body.endswith(f"— réf. {reference}")
    title = next(p["title"]["fr"] for p in proposals if p["id"] == state(rt, first)[0])
    assert title == "Il faut plus de bancs au parc, près de l'aire de jeux"  # no final stop
    sent = creates(fake)[0]
    assert sent["variables"]["component"] == str(COMPONENT)
    assert sent["variables"]["input"]["locale"] == "fr"

    again = publish(rt)
    assert again.already == 2 and again.outcomes == []
    assert len(fake.proposals) == 2


def test_nothing_personal_reaches_decidim(rt: Runtime, fake: FakeDecidim, caplog):
    caplog.set_level("DEBUG")
    cid = published(rt, number=NUMBER)
    email = seed.contributor(rt, "marie.dupont@example.org", channel="email")
    by_mail = seed.contribution(
        rt,
        "Bonjour, Marie Dupont, 3 rue des Lilas : des toilettes publiques au parc.",
        person=email,
        channel="email",
        status="published",
        public_text="Des toilettes publiques au parc, près du kiosque.",
        attachments=[{"kind": "photo", "path": "attachments/lilas.jpg", "name": "lilas.jpg"}],
    )
    voice = seed.contribution(
        rt,
        "",
        channel="voice",
        status="published",
        transcript="allo c'est marie dupont du 3 rue des lilas je voudrais des toilettes",
        public_text="Je voudrais des toilettes publiques dans le parc.",
        audio=seed.WAV,
        broadcast_consent=True,
    )
    report = publish(rt)
    assert report.ok and all(state(rt, c)[0] for c in (cid, by_mail, voice))
    sent = "\n".join(r["body"] for r in fake.requests)
    assert PUBLIC.split(",")[0] in sent  # the public versions went out...
    for needle in [
        *phone_forms(NUMBER),
        "Marie Dupont",
        "marie dupont",
        "marie.dupont@example.org",
        "rue des Lilas",
        "rue des lilas",
        "lilas.jpg",
        ORIGINAL,
    ]:
        assert needle not in sent, needle  # ...and nothing the resident wrote beside them
    # The API secret goes to the sign-in only, and never into a log.
    assert [r["path"] for r in fake.requests if fake.secret in r["body"]] == ["/api/sign_in"]
    assert fake.secret not in caplog.text
    assert fake.secret not in repr(rt.settings)


def test_an_earlier_032_without_the_locale_argument_gets_the_proposal_all_the_same(
    rt: Runtime, fake: FakeDecidim
):
    fake.state.accepts_locale = False
    cid = published(rt)
    report = publish(rt)
    assert report.ok and state(rt, cid)[0]
    sent = creates(fake)
    assert "locale" in sent[0]["variables"]["input"]
    assert "locale" not in sent[-1]["variables"]["input"]
    assert len(fake.proposals) == 1


# -- refusals ------------------------------------------------------------------------------


def test_a_validation_error_is_stored_and_the_others_go_on(rt: Runtime, fake: FakeDecidim):
    fake.components[COMPONENT].proposal_length = 200  # the administrator's setting
    long = published(rt, "Un banc de plus. " + "Et un arbre à côté du banc, pour l'ombre. " * 6)
    short = published(rt)

    report = publish(rt)

    assert [o.action for o in report.outcomes] == ["failed", "published"]
    decidim_id, sent_at, error = state(rt, long)
    assert decidim_id is None and sent_at is None  # refused: nothing to look for later
    assert error is not None and "body: est trop long (pas plus de 200 caractères)" in error
    assert state(rt, short)[0]
    assert len(fake.proposals) == 1


def test_a_contribution_decidim_would_refuse_is_not_sent(rt: Runtime, fake: FakeDecidim):
    cid = published(rt, "Il faut " + "a" * 40 + " au parc, vraiment, pour tous.")
    report = publish(rt)
    assert report.outcomes[0].action == "failed"
    error = state(rt, cid)[2]
    assert error is not None and error.startswith("not sent:") and "35 or more letters" in error
    assert creates(fake) == []


def test_the_proposal_limit_stops_the_run(rt: Runtime, fake: FakeDecidim):
    fake.components[COMPONENT].limit = 1
    cids = [published(rt) for _ in range(3)]
    report = publish(rt)
    assert [o.action for o in report.outcomes] == ["published", "failed", "skipped"]
    assert report.stopped is not None and "proposal limit reached" in report.stopped
    error = state(rt, cids[1])[2]
    assert error is not None and "proposal limit reached" in error and "limite" in error
    assert state(rt, cids[2]) == (None, None, None)
    assert len(creates(fake)) == 2  # the third was not even tried


def test_a_closed_step_stops_the_run_with_a_clear_error(rt: Runtime, fake: FakeDecidim):
    fake.components[COMPONENT].accepts = False
    cids = [published(rt) for _ in range(2)]
    report = publish(rt)
    assert [o.action for o in report.outcomes] == ["failed", "skipped"]
    error = state(rt, cids[0])[2]
    assert error is not None and "does not accept proposals in component 7" in error
    assert fake.proposals == []
    # Taken first for an expired token: signed in once more, then believed.
    assert fake.sign_ins == 2
    fake.components[COMPONENT].accepts = True  # the next step opens
    assert [o.action for o in publish(rt).outcomes] == ["published", "published"]
    assert state(rt, cids[0])[2] is None


def test_an_unknown_component_is_said_clearly(rt: Runtime, fake: FakeDecidim):
    with rt.sessions.begin() as session:
        session.execute(
            update(Campaign).where(Campaign.slug == "parc").values(decidim_component=99)
        )
    published(rt)
    report = publish(rt)
    assert report.stopped is not None and "no component 99" in report.stopped


def test_an_expired_token_is_renewed_once(rt: Runtime, fake: FakeDecidim):
    client = DecidimClient.from_settings(rt.settings, sleep=lambda s: None)
    first = published(rt)
    publish(rt, client=client)
    assert fake.sign_ins == 1
    fake.expire_tokens()
    second = published(rt)
    report = publish(rt, client=client)
    assert report.ok and state(rt, first)[0] and state(rt, second)[0]
    assert fake.sign_ins == 2
    assert len(fake.proposals) == 2


def test_an_expired_token_refused_with_401_is_renewed_once(rt: Runtime, fake: FakeDecidim):
    fake.state.force_authentication = True
    client = DecidimClient.from_settings(rt.settings, sleep=lambda s: None)
    published(rt)
    publish(rt, client=client)
    fake.expire_tokens()
    published(rt)
    report = publish(rt, client=client)
    assert report.ok and len(fake.proposals) == 2
    assert fake.sign_ins == 2


def test_a_campaign_language_the_organisation_lacks_stops_the_run(rt: Runtime, fake: FakeDecidim):
    fake.state.locales = ("ca", "es")
    cid = published(rt)
    report = publish(rt)
    assert report.stopped is not None and "language" in report.stopped
    assert state(rt, cid)[0] is None and fake.proposals == []


def test_a_token_about_to_expire_is_renewed_before_use(rt: Runtime, fake: FakeDecidim):
    fake.state.token_lifetime = 30  # under the client's margin
    published(rt)
    published(rt)
    publish(rt)
    assert fake.sign_ins >= 3  # the version query and each proposal


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": "0.31.4"}, "0.32 or later is needed"),
        ({"version": None}, "DECIDIM_API_DISCLOSE_SYSTEM_VERSION"),
    ],
)
def test_decidim_before_032_is_refused_before_anything_is_sent(
    rt: Runtime, fake: FakeDecidim, change: dict[str, Any], message: str
):
    for name, value in change.items():
        setattr(fake.state, name, value)
    published(rt)
    with pytest.raises(DecidimError, match=message):
        publish(rt)
    assert creates(fake) == []


def test_wrong_credentials_are_said_without_the_secret(settings: Settings, fake: FakeDecidim):
    rt = runtime_with(settings, **{**decidim_settings(fake), "decidim_api_secret": "wrong-" * 6})
    try:
        with rt.sessions.begin() as session:
            session.execute(
                update(Campaign).where(Campaign.slug == "parc").values(decidim_component=7)
            )
        with pytest.raises(DecidimError, match="refused the API credentials") as caught:
            publish(rt)
        assert "wrong-" not in str(caught.value)
    finally:
        rt.close()


def test_a_redirect_is_not_followed_with_the_secret(rt: Runtime, fake: FakeDecidim):
    fake.state.redirect_sign_in = "https://elsewhere.example.net/api/sign_in"
    published(rt)
    with pytest.raises(DecidimError, match=r"redirects .* to https://elsewhere\.example\.net"):
        publish(rt)
    assert fake.proposals == []


def test_decidim_out_of_reach_is_said_and_nothing_is_marked(rt: Runtime, fake: FakeDecidim):
    cid = published(rt)
    fake.state.fail_next = [503] * (len(decidim_api.BACKOFF) + 1)
    with pytest.raises(DecidimError, match=r"did not answer .*HTTP 503"):
        publish(rt)
    assert state(rt, cid) == (None, None, None)
    fake.stop()
    with pytest.raises(DecidimError, match="cannot reach Decidim"):
        publish(rt)


# -- never twice -----------------------------------------------------------------------------


def test_an_answer_lost_on_the_way_is_found_again_not_duplicated(rt: Runtime, fake: FakeDecidim):
    fake.state.drop_after_create = 1  # created in Decidim, the answer never arrives
    sleeps: list[float] = []
    cid = published(rt)
    report = publish(rt, sleep=sleeps.append)
    assert [o.action for o in report.outcomes] == ["recovered"]
    assert len(fake.proposals) == 1
    assert state(rt, cid)[0] == fake.proposals[0]["id"]
    assert state(rt, cid)[2] is None
    assert sleeps == [decidim_api.BACKOFF[0]]


def test_a_run_that_died_after_decidim_created_the_proposal_is_not_repeated(
    rt: Runtime, fake: FakeDecidim, monkeypatch
):
    cid = published(rt)
    other = published(rt)

    def crash(*args: Any) -> None:
        raise KeyboardInterrupt  # the process is killed between Decidim's answer and ours

    monkeypatch.setattr(decidim_api, "_record", crash)
    with pytest.raises(KeyboardInterrupt):
        publish(rt)
    decidim_id, sent_at, error = state(rt, cid)
    assert decidim_id is None and sent_at is not None and error is not None
    assert len(fake.proposals) == 1
    monkeypatch.undo()

    report = publish(rt)

    assert next((o.action, o.decidim_id) for o in report.outcomes) == (
        "recovered",
        fake.proposals[0]["id"],
    )
    assert len(fake.proposals) == 2  # the other one, once
    assert state(rt, cid)[0] == fake.proposals[0]["id"]
    assert state(rt, other)[0] == fake.proposals[1]["id"]


def test_an_interrupted_proposal_is_found_among_many_by_the_reference_that_ends_it(
    rt: Runtime, fake: FakeDecidim
):
    cid = published(rt)
    with rt.sessions.begin() as session:
        c = session.get(Contribution, cid)
        assert c is not None
        reference = c.reference
        # Sent by a run that died before it heard back (see the test above).
        c.decidim_published_at = datetime.now(UTC)
    others = [
        {
            "id": str(500 + n),
            "component": COMPONENT,
            "title": {"fr": "Une autre proposition"},
            # A resident may quote a reference: only the one that ends the body counts.
            "body": {"fr": f"Comme {reference}, plus d'arbres.\n\nRéférence : PARC-{n + 2:04d}"},
        }
        for n in range(120)
    ]
    mine = {
        "id": "999",
        "component": COMPONENT,
        "title": {"fr": "Bancs"},
        "body": {"fr": f"Il faut plus de bancs.\n\nRecueilli par SMS. Référence : {reference}"},
    }
    fake.state.proposals.extend([*others[:110], mine, *others[110:]])

    report = publish(rt)

    assert [(o.action, o.decidim_id) for o in report.outcomes] == [("recovered", "999")]
    assert state(rt, cid)[0] == "999" and creates(fake) == []
    pages = [r for r in fake.requests if "GatewayProposals" in r["body"]]
    assert len(pages) == 3  # 50 at a time


def test_one_run_per_campaign_at_a_time(rt: Runtime, fake: FakeDecidim):
    from gateway import locks

    cid = published(rt)
    with locks.hold(rt.redis, "decidim:parc", wait=1):  # another worker's run
        with pytest.raises(DecidimError, match="another publication of campaign 'parc'"):
            publish(rt)
    assert creates(fake) == [] and state(rt, cid) == (None, None, None)
    assert publish(rt).ok


def test_server_errors_are_retried_with_backoff_then_left_for_the_next_run(
    rt: Runtime, fake: FakeDecidim
):
    fake.state.fail_creates = [503] * (len(decidim_api.BACKOFF) + 1)
    sleeps: list[float] = []
    cid = published(rt)
    report = publish(rt, sleep=sleeps.append)
    assert [o.action for o in report.outcomes] == ["failed"]
    assert sleeps == list(decidim_api.BACKOFF)
    decidim_id, sent_at, error = state(rt, cid)
    assert decidim_id is None and sent_at is not None
    assert error is not None and "no answer from Decidim" in error and "HTTP 503" in error
    assert fake.proposals == []

    report = publish(rt)  # Decidim is back: looked up first, then created once
    assert [o.action for o in report.outcomes] == ["published"]
    assert len(fake.proposals) == 1 and state(rt, cid)[0] == fake.proposals[0]["id"]


def test_queries_are_retried_after_a_network_or_server_error(rt: Runtime, fake: FakeDecidim):
    fake.state.fail_next = [502, 503]
    sleeps: list[float] = []
    client = DecidimClient.from_settings(rt.settings, sleep=sleeps.append, backoff=(0.5, 1, 2))
    assert client.version() == "0.32.1"
    assert sleeps == [0.5, 1]


# -- dry run and the command -----------------------------------------------------------------


def test_dry_run_checks_and_shows_but_creates_nothing(rt: Runtime, fake: FakeDecidim):
    cid = published(rt)
    report = publish(rt, dry_run=True)
    assert [o.action for o in report.outcomes] == ["would_publish"]
    assert report.outcomes[0].body.endswith(report.outcomes[0].reference)
    assert fake.sign_ins == 1 and creates(fake) == []
    assert state(rt, cid) == (None, None, None)


def test_the_command_publishes_and_says_what_it_did(
    rt: Runtime, fake: FakeDecidim, settings: Settings
):
    from gateway.cli import main

    cid = published(rt, number=NUMBER)
    env = {
        **cli_env(settings),
        "GATEWAY_DECIDIM_URL": fake.base_url,
        "GATEWAY_DECIDIM_API_KEY": fake.key,
        "GATEWAY_DECIDIM_API_SECRET": fake.secret,
    }
    runner = CliRunner()
    dry = runner.invoke(main, ["decidim", "publish", "--campaign", "parc", "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    assert "dry run" in dry.output and "would publish PARC-" in dry.output
    assert "title: Il faut plus de bancs" in dry.output
    assert creates(fake) == []

    real = runner.invoke(main, ["decidim", "publish", "--campaign", "parc"], env=env)
    assert real.exit_code == 0, real.output
    decidim_id = state(rt, cid)[0]
    assert f"-> proposal {decidim_id}" in real.output
    assert "published: 1" in real.output
    assert fake.secret not in dry.output + real.output
    for form in phone_forms(NUMBER):
        assert form not in dry.output + real.output

    fake.components[COMPONENT].accepts = False
    published(rt)
    refused = runner.invoke(main, ["decidim", "publish", "--campaign", "parc"], env=env)
    assert refused.exit_code == 1
    assert "does not accept proposals" in refused.output

    missing = runner.invoke(main, ["decidim", "publish", "--campaign", "nope"], env=env)
    assert missing.exit_code != 0 and "no campaign 'nope'" in missing.output


def test_without_settings_or_component_the_operator_is_told_what_to_set(
    settings: Settings, fake: FakeDecidim
):
    bare = runtime_with(settings)
    try:
        with pytest.raises(DecidimError, match="GATEWAY_DECIDIM_URL"):
            decidim_api.publish_campaign(bare, "parc")
    finally:
        bare.close()
    configured = runtime_with(settings, **decidim_settings(fake))
    try:
        with pytest.raises(DecidimError, match=r"decidim: \{component: ID\}"):
            decidim_api.publish_campaign(configured, "budget")
    finally:
        configured.close()
    assert fake.requests == []


def test_the_job_publishes_and_counts(rt: Runtime, fake: FakeDecidim, monkeypatch):
    from workers import context, jobs

    cid = published(rt)
    monkeypatch.setattr(context, "get_runtime", lambda: rt)
    monkeypatch.setattr(jobs, "get_runtime", lambda: rt)
    assert jobs.publish_to_decidim("parc") == {
        "published": 1,
        "failed": 0,
        "skipped": 0,
        "already": 0,
    }
    assert jobs.publish_to_decidim("parc")["already"] == 1
    assert state(rt, cid)[0] and len(fake.proposals) == 1
    with rt.sessions() as session:
        campaign = session.scalar(select(Campaign).where(Campaign.slug == "parc"))
        assert campaign is not None
        assert decidim_api.counts(session)[campaign.id] == (1, 0)
