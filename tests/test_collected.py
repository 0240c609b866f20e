"""Contributions collected by agents (gateway.moderation.collected and collected_import): the
checks every path shares, filing with and without a contact (the receipt through the fake
Twilio, the same person as their own SMS), idempotency, the spreadsheet reader and the
provenance line; on SQLite and PostgreSQL with a real Redis."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import select

from gateway.models import (
    Campaign,
    Contribution,
    Contributor,
    ModerationEvent,
    OutboundMessage,
)
from gateway.moderation import actions, collected, collected_import
from gateway.moderation.accounts import Actor
from gateway.publication.records import provenance, public_records
from tests.helpers import drain, send_sms

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 3, 14, 10, 0, tzinfo=UTC)
AGENT = Actor(name="sam", role="agent")


def entry(**changes: str) -> collected.Entry:
    values = {
        "campaign": "parc",
        "text": "Plus de bancs à l'ombre",
        "channel": "street",
        "collected_on": "12/03/2026",
        "place": "marché du Parc",
    }
    values.update(changes)
    return collected.Entry(**values)


def errors(runtime, e: collected.Entry) -> dict[str, str]:
    with runtime.sessions() as session:
        with pytest.raises(collected.Invalid) as refused:
            collected.check(session, e, tz=PARIS, now=NOW)
    return {k: v.rsplit(".", 1)[1] for k, v in refused.value.errors.items()}


def checked(runtime, **changes: str) -> collected.Checked:
    with runtime.sessions() as session:
        return collected.check(session, entry(**changes), tz=PARIS, now=datetime.now(UTC))


# -- checks ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "code"),
    [
        ({"campaign": ""}, "campaign", "campaign_required"),
        ({"campaign": "nope"}, "campaign", "campaign_unknown"),
        ({"campaign": "velo"}, "campaign", "campaign_draft"),
        ({"text": "   \n "}, "text", "text_required"),
        ({"text": "x" * 5001}, "text", "text_too_long"),
        ({"channel": "sms"}, "channel", "channel_unknown"),
        ({"collected_on": "le 12 mars"}, "collected_on", "date_invalid"),
        ({"collected_on": "2026-03-15"}, "collected_on", "date_future"),
        ({"collected_on": "1926-03-12"}, "collected_on", "date_too_old"),
        ({"place": "p" * 201}, "place", "place_too_long"),
        ({"neighbourhood": "Atlantide"}, "neighbourhood", "neighbourhood_unknown"),
        ({"kind": "famille"}, "kind", "kind_unknown"),
        ({"kind": "collective"}, "group_description", "group_required"),
        ({"contact": "06 12"}, "contact", "contact_invalid"),
        ({"contact": "marie@"}, "contact", "contact_invalid"),
        ({"contact": "01 40 00 00 00"}, "contact", "contact_no_sms"),
    ],
)
def test_a_bad_value_is_refused_naming_its_field(runtime, changes, field, code):
    assert errors(runtime, entry(**changes)) == {field: code}


def test_every_field_at_fault_is_named_at_once(runtime):
    found = errors(runtime, entry(campaign="", text="", channel="fax", contact="?"))
    assert set(found) == {"campaign", "text", "channel", "contact"}


def test_values_are_normalised(runtime):
    c = checked(
        runtime,
        neighbourhood="parc nord",  # the campaign's own spelling is kept
        contact=" 06 12 34 56 78 ",
        kind="collective",
        group_description="  atelier du centre   social ",
        collected_on="2026-03-12",
    )
    assert c.neighbourhood == "Parc Nord"
    assert (c.contact_channel, c.contact) == ("sms", "+33612345678")
    assert c.group_description == "atelier du centre social"
    # A day is kept as that day in the city's time.
    assert c.collected_at.astimezone(PARIS).date().isoformat() == "2026-03-12"
    assert (
        checked(runtime, contact="Marie.Dupont@Example.ORG").contact == "marie.dupont@example.org"
    )


def test_a_campaign_without_neighbourhoods_takes_any(runtime):
    with runtime.sessions.begin() as session:
        session.scalar(select(Campaign).where(Campaign.slug == "parc")).neighbourhoods = []
    assert checked(runtime, neighbourhood="Les Fontenelles").neighbourhood == "Les Fontenelles"


def test_a_closed_campaign_still_takes_late_paper(runtime):
    with runtime.sessions.begin() as session:
        session.scalar(select(Campaign).where(Campaign.slug == "parc")).status = "closed"
    assert checked(runtime).campaign == "parc"


# -- filing ------------------------------------------------------------------------------------


def test_without_a_contact_nothing_is_sent_and_the_reference_is_for_the_agent(runtime, fake_twilio):
    filed = collected.file(runtime, AGENT, checked(runtime))
    drain(runtime)
    assert filed.created and filed.receipt is None and filed.reference.startswith("PARC-")
    assert fake_twilio.messages == []
    with runtime.sessions() as session:
        c = session.get(Contribution, filed.contribution_id)
        assert (c.channel, c.status, c.contributor_id) == ("street", "pending", None)
        assert (c.collected_place, c.collected_by) == ("marché du Parc", "sam")
        event = session.scalar(select(ModerationEvent).where(ModerationEvent.action == "collect"))
        assert event.actor == "sam" and event.contribution_id == c.id


def test_a_phone_number_gets_the_receipt_then_the_outcome_as_one_person(runtime, fake_twilio):
    # The resident already texted from that number: the agent's entry is the same person.
    send_sms(runtime, "PARC des jeux pour les petits", sender="+33612345678")
    fake_twilio.reset()
    filed = collected.file(runtime, AGENT, checked(runtime, contact="06 12 34 56 78"))
    assert filed.receipt == "queued"
    drain(runtime)
    (receipt,) = fake_twilio.messages
    assert receipt["To"] == "+33612345678"
    assert filed.reference in receipt["Body"] and "agent" in receipt["Body"]
    with runtime.sessions() as session:
        people = session.scalars(select(Contributor)).all()
        assert len(people) == 1 and people[0].channel == "sms"
        c = session.get(Contribution, filed.contribution_id)
        assert c.contributor_id == people[0].id
        # The number is stored encrypted only.
        assert b"612345678" not in (people[0].address_encrypted or b"")
    moderator = Actor(name="camille", role="moderator")
    actions.decide(runtime, moderator, [filed.contribution_id], "publish")
    drain(runtime)
    notice = fake_twilio.messages[-1]
    assert notice["To"] == "+33612345678" and filed.reference in notice["Body"]


def test_an_opted_out_person_gets_no_receipt(runtime, fake_twilio):
    send_sms(runtime, "STOP", sender="+33612345678")
    fake_twilio.reset()
    filed = collected.file(runtime, AGENT, checked(runtime, contact="+33612345678"))
    drain(runtime)
    assert filed.receipt == "opted_out" and fake_twilio.messages == []


def test_an_email_address_gets_the_receipt_by_email(runtime):
    filed = collected.file(runtime, AGENT, checked(runtime, contact="marie@example.org"))
    with runtime.sessions() as session:
        row = session.scalar(
            select(OutboundMessage).where(OutboundMessage.contribution_id == filed.contribution_id)
        )
        assert row.channel == "email" and row.message_key == collected.RECEIPT
        assert filed.reference in row.text


def test_the_same_key_files_once(runtime):
    key = collected.client_key("api:tablet", "abc-1")
    first = collected.file(runtime, AGENT, checked(runtime), key=key)
    again = collected.file(runtime, AGENT, checked(runtime), key=key)
    assert first.created and not again.created
    assert again.reference == first.reference
    with runtime.sessions() as session:
        assert len(session.scalars(select(Contribution)).all()) == 1


def test_forgetting_the_person_detaches_the_collected_contribution(runtime):
    filed = collected.file(runtime, AGENT, checked(runtime, contact="+33612345678"))
    from gateway import residents

    residents.forget_address(runtime, "sms", "+33612345678", actor="alex")
    with runtime.sessions() as session:
        c = session.get(Contribution, filed.contribution_id)
        assert c.contributor_id is None and c.text
        assert session.scalars(select(Contributor)).all() == []


def test_the_contact_is_kept_encrypted_only_and_erasure_leaves_no_trace(
    runtime, fake_twilio, caplog
):
    from gateway import residents
    from tests.privacy_scan import in_database, in_files, in_redis, phone_forms

    caplog.set_level("DEBUG")
    number = "+33698765432"
    filed = collected.file(runtime, AGENT, checked(runtime, contact="06 98 76 54 32"))
    drain(runtime)
    assert fake_twilio.messages[0]["To"] == number
    found = in_database(runtime, phone_forms(number))
    assert found and all(f.split("#")[0].endswith("_encrypted") for f in found), found
    assert not any(form in caplog.text for form in phone_forms(number))
    residents.forget_address(runtime, "sms", number, actor="alex")
    assert in_database(runtime, phone_forms(number)) == []
    assert in_files(runtime.settings.data_path, phone_forms(number)) == []
    assert in_redis(runtime.redis, phone_forms(number)) == []
    with runtime.sessions() as session:
        assert session.get(Contribution, filed.contribution_id).contributor_id is None


# -- provenance --------------------------------------------------------------------------------


def test_the_public_provenance_says_an_agent_the_place_and_the_day_never_who(runtime):
    filed = collected.file(runtime, AGENT, checked(runtime))
    actions.decide(
        runtime, Actor(name="camille", role="moderator"), [filed.contribution_id], "publish"
    )
    with runtime.sessions() as session:
        campaign = session.scalar(select(Campaign).where(Campaign.slug == "parc"))
        (record,) = public_records(session, campaign, runtime.vault)
    assert provenance(record, "fr", PARIS) == "recueilli par un agent, marché du Parc, 12 mars"
    assert provenance(record, "en", PARIS) == "collected by an agent, marché du Parc, March 12"
    assert "sam" not in repr(record)


# -- the spreadsheet ---------------------------------------------------------------------------


def rows_csv(rows: list[list[str]], delimiter: str = ";") -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter)
    writer.writerow(["consultation", "texte", "mode", "date", "lieu", "quartier", "contact"])
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def test_the_csv_template_reads_back_and_names_its_columns_in_french():
    data = collected_import.template_csv(datetime(2027, 3, 12).date())
    assert data.startswith("\ufeff".encode())
    ((line, values),) = collected_import.read_rows(data, "modele.csv")
    assert line == 2 and values["campaign"] == "parc" and values["channel"] == "street"
    assert data.decode("utf-8-sig").splitlines()[0].startswith("consultation;texte;mode;date")


def test_the_xlsx_template_holds_text_only():
    data = collected_import.template_xlsx(datetime(2027, 3, 12).date())
    sheet = load_workbook(io.BytesIO(data)).worksheets[0]
    assert all(cell.data_type == "s" for row in sheet.iter_rows() for cell in row if cell.value)
    ((_, values),) = collected_import.read_rows(data, "modele.xlsx")
    assert values["collected_on"] == "2027-03-12"


def test_english_headers_and_commas_are_accepted():
    out = io.StringIO()
    csv.writer(out).writerows([["campaign", "text", "channel"], ["parc", "des arbres", "paper"]])
    ((line, values),) = collected_import.read_rows(out.getvalue().encode(), "day.csv")
    assert (line, values["text"], values["channel"]) == (2, "des arbres", "paper")


@pytest.mark.parametrize(
    ("data", "name", "code"),
    [
        (b"", "a.csv", "file_empty"),
        (b"consultation;texte;mode\n", "a.csv", "file_empty"),
        (b"consultation;texte;couleur;mode\nparc;x;bleu;rue\n", "a.csv", "column_unknown"),
        (b"consultation;mode\nparc;rue\n", "a.csv", "column_missing"),
        (b"x" * (collected_import.MAX_IMPORT_BYTES + 1), "a.csv", "file_too_big"),
        (b"PK\x03\x04garbage", "a.xlsx", "file_unreadable"),
        (b"\xd0\xcf\x11\xe0", "old.xls", "file_type"),
    ],
)
def test_a_file_that_cannot_be_read_is_refused_whole(data, name, code):
    with pytest.raises(collected_import.FileRefused) as refused:
        collected_import.read_rows(data, name)
    assert refused.value.key.endswith(code)


def test_too_many_rows_are_refused():
    data = rows_csv([["parc", f"idée {i}", "rue", "", "", "", ""] for i in range(1001)])
    with pytest.raises(collected_import.FileRefused) as refused:
        collected_import.read_rows(data, "a.csv")
    assert refused.value.key.endswith("too_many_rows")


def test_quoted_cells_over_several_lines_keep_line_numbers_right():
    data = rows_csv([["parc", "ligne un\nligne deux", "rue"], ["parc", "", "rue"]])
    rows = collected_import.read_rows(data, "a.csv")
    assert [line for line, _ in rows] == [2, 4]


def test_a_day_of_rows_files_the_good_ones_reports_the_bad_and_never_twice(runtime):
    today = datetime.now(UTC).astimezone(PARIS).date()
    rows = [
        ["parc", f"idée {i}", "rue", today.isoformat(), "marché du Parc", "", ""] for i in range(6)
    ]
    rows[1][1] = ""  # line 3: no text
    rows[3][2] = "fax"  # line 5: unknown mode
    rows[4][3] = (today + timedelta(days=3)).isoformat()  # line 6: in the future
    rows.append(["parc", '=HYPERLINK("http://evil")', "papier", "", "", "Parc Sud", ""])
    rows.append(["parc", "idée 0", "rue", today.isoformat(), "marché du Parc", "", ""])  # twice
    data = rows_csv(rows)
    report = collected_import.import_rows(runtime, AGENT, data, "stand.csv")
    assert [(p.line, p.key.rsplit(".", 1)[1]) for p in report.problems] == [
        (3, "text_required"),
        (5, "channel_unknown"),
        (6, "date_future"),
    ]
    assert [line for line, _ in report.filed] == [2, 4, 7, 8, 9]
    with runtime.sessions() as session:
        texts = sorted(c.text for c in session.scalars(select(Contribution)))
    # Identical rows are two residents; a formula is text, as it was written.
    assert texts == sorted(["idée 0", "idée 0", "idée 2", "idée 5", '=HYPERLINK("http://evil")'])
    again = collected_import.import_rows(runtime, AGENT, data, "stand.csv")
    assert again.filed == [] and len(again.already) == 5 and len(again.problems) == 3
    # The bad rows corrected: only they are filed.
    rows[1][1], rows[3][2], rows[4][3] = "idée 1", "paper", today.isoformat()
    fixed = collected_import.import_rows(runtime, AGENT, rows_csv(rows), "stand.csv")
    assert [line for line, _ in fixed.filed] == [3, 5, 6] and fixed.problems == []
    with runtime.sessions() as session:
        assert len(session.scalars(select(Contribution)).all()) == 8


def test_an_xlsx_upload_files_its_rows_and_keeps_formulas_as_text(runtime):
    book = Workbook()
    sheet = book.active
    sheet.append(["Consultation", "Texte", "Mode", "Date", "Lieu", "Quartier", "Type", "Groupe"])
    sheet.append(
        [
            "parc",
            "Un jardin partagé",
            "réunion",
            datetime(2026, 3, 1),
            "Maison de quartier",
            "Centre",
            "collective",
            "atelier, 12 personnes",
        ]
    )
    sheet.append(["parc", "=1+1", "papier", "", "", "", "", ""])
    sheet.append(["parc", "", "papier", "", "", "", "", ""])
    out = io.BytesIO()
    book.save(out)
    report = collected_import.import_rows(runtime, AGENT, out.getvalue(), "atelier.xlsx")
    assert [line for line, _ in report.filed] == [2, 3]
    assert [(p.line, p.params["field"]) for p in report.problems] == [(4, "text")]
    with runtime.sessions() as session:
        found = {c.text: c for c in session.scalars(select(Contribution))}
    assert set(found) == {"Un jardin partagé", "=1+1"}
    workshop = found["Un jardin partagé"]
    assert (workshop.channel, workshop.kind, workshop.group_description) == (
        "meeting",
        "collective",
        "atelier, 12 personnes",
    )
    assert workshop.collected_at.astimezone(PARIS).date().isoformat() == "2026-03-01"


# -- who may enter -----------------------------------------------------------------------------


def test_the_collect_scope_enters_contributions_and_nothing_else():
    from gateway.moderation.accounts import COLLECT, SCOPES, scope_allows

    assert [s for s in (*SCOPES, COLLECT) if scope_allows(s, COLLECT)] == [
        "moderate",
        "admin",
        "collect",
    ]
    assert not any(scope_allows(COLLECT, s) for s in SCOPES)
    assert Actor(name="sam", role="agent").allows(COLLECT)
    assert not Actor(name="sam", role="agent").allows("read")


def test_the_commands_make_agent_accounts_and_collect_tokens(tmp_path):
    import os

    from tests.moderation.test_accounts import PASSWORD, _gateway

    env = {**os.environ, "GATEWAY_DATA_DIR": str(tmp_path / "data"), "GATEWAY_LOG_LEVEL": "WARNING"}
    made = _gateway(["moderators", "add", "sam", "--role", "agent"], env, tmp_path, PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    token = _gateway(["tokens", "create", "tablet-1", "--scope", "collect"], env, tmp_path)
    assert token.returncode == 0 and "scope collect" in token.stderr and "90 days" in token.stderr
    listed = _gateway(["tokens", "list"], env, tmp_path)
    assert listed.stdout.split()[:2] == ["tablet-1", "collect"]


def test_an_a_posteriori_campaign_publishes_an_agents_entry_at_once_redacted(runtime, fake_twilio):
    with runtime.sessions() as session, session.begin():
        campaign = session.scalar(select(Campaign).where(Campaign.slug == "parc"))
        campaign.moderation_mode = "a_posteriori"
    text = "Appelez-moi au 06 98 76 54 32 pour les bancs du square"
    filed = collected.file(runtime, AGENT, checked(runtime, text=text, contact="+33612345678"))
    drain(runtime)
    with runtime.sessions() as session:
        c = session.get(Contribution, filed.contribution_id)
        assert (c.status, c.awaiting_review) == ("published", True)
        assert "98 76" not in (c.public_text or "") and "bancs" in (c.public_text or "")
    (receipt,) = fake_twilio.messages
    assert filed.reference in receipt["Body"] and "publiée" in receipt["Body"]
