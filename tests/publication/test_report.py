"""`gateway report`: the campaign's self-contained HTML report, read back as a reader would.

A campaign with SMS, voice, Telegram and email contributions (published, rejected, pending,
spam, answered, one answer given to two contributions) and people whose phone numbers, chat
id and email address are known: the report is run through the command, parsed with the
standard library's HTML parser, and its figures compared with the database's own counts; its
bytes are scanned for everything that must never leave the gateway.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from gateway.cli import main
from gateway.models import Campaign, Contribution
from gateway.publication.records import public_records
from gateway.runtime import Runtime
from tests.console import seed
from tests.helpers import cli_env
from tests.privacy_scan import phone_forms

SMS_NUMBER = "+33612345678"
VOICE_NUMBER = "+33698765432"
CHAT_ID = "7364519283"
EMAIL = "habitante.secrete@example.net"
XSS = '<script>alert("x")</script><img src=x onerror="alert(1)"> Des jeux & du sport'

# What residents wrote, transcripts, and contributions that never leave: none may appear.
SECRETS = {
    "sms original": f"ORIGINAL-SMS rappelez-moi au {SMS_NUMBER}",
    "raw transcript": "RAW-TRANSCRIPT je suis madame Durand du 12 rue des Lilas",
    "telegram original": "ORIGINAL-TELEGRAM écrivez à mon fils",
    "email original": f"ORIGINAL-EMAIL écrivez-moi à {EMAIL}",
    "pending text": "PENDING-SECRET pas encore modérée",
    "pending public": "PENDING-PUBLIC version pas encore validée",
    "spam text": "SPAM-SECRET achetez maintenant",
    "pending neighbourhood": "Rue des Lilas numéro 12",
    "other campaign": "BUDGET-SECRET autre consultation",
}


def _at(day: int, hour: int = 10) -> datetime:
    return datetime(2026, 3, day, hour, 4, tzinfo=UTC)


@dataclass
class Seeded:
    published: list[str] = field(default_factory=list)  # public texts


def _seed(rt: Runtime) -> Seeded:
    sms = seed.contributor(rt, SMS_NUMBER, "sms")
    voice = seed.contributor(rt, VOICE_NUMBER, "voice")
    chat = seed.contributor(rt, CHAT_ID, "telegram")
    mail = seed.contributor(rt, EMAIL, "email")
    group_answer = {
        "answer_state": "accepted",
        "answer_text": "La ville installera dix bancs d’ici l’été.",
        "answered_at": _at(20),
    }
    seen = Seeded()

    def published(public: str, **fields: Any) -> None:
        seed.contribution(rt, status="published", public_text=public, **fields)
        seen.published.append(public)

    published(
        "Plus de bancs près du kiosque",
        text=SECRETS["sms original"],
        channel="sms",
        person=sms,
        received_at=_at(2),
        neighbourhood="Parc Nord",
        category="proposal",
        **group_answer,
    )
    published(
        "Des bancs à l’ombre, s’il vous plaît",
        text="ORIGINAL-SMS-2 des bancs",
        channel="sms",
        person=sms,
        received_at=_at(3),
        neighbourhood="Parc Sud",
        category="proposal",
        **group_answer,
    )
    published(
        "Un terrain de basket pour les jeunes",
        text=SECRETS["raw transcript"],
        transcript=SECRETS["raw transcript"],
        channel="voice",
        person=voice,
        received_at=_at(3, 19),
        neighbourhood="Parc Sud",
        category="proposal",
        broadcast_consent=True,
        answer_state="evaluating",
        answer_text="Le service des sports étudie un terrain.",
        answered_at=_at(21),
    )
    published(
        XSS,
        text=SECRETS["telegram original"],
        channel="telegram",
        person=chat,
        received_at=_at(5),
        category="question",
    )
    published(
        "Les allées sont mal éclairées le soir",
        text=SECRETS["email original"],
        channel="email",
        person=mail,
        received_at=_at(9),
        neighbourhood="Centre",
        category="diagnostic",
        answer_state="done",
        answer_text="Les lampadaires ont été remplacés en avril.",
        answer_text_en="The street lights were replaced in April.",
        answered_at=_at(22),
    )
    for reason, channel, person, day in (
        ("Propos injurieux", "sms", sms, 4),
        ("Hors sujet", "email", mail, 6),
        ("Hors sujet", "telegram", chat, 6),
    ):
        seed.contribution(
            rt,
            f"ORIGINAL-REJECTED {day} {channel}",
            status="rejected",
            public_text=f"Texte refusé {channel} {day}",
            decision_reason=reason,
            channel=channel,
            person=person,
            received_at=_at(day),
            neighbourhood="Université",
        )
    seed.contribution(
        rt,
        SECRETS["pending text"],
        public_text=SECRETS["pending public"],
        channel="sms",
        person=sms,
        received_at=_at(10),
        neighbourhood=SECRETS["pending neighbourhood"],
    )
    seed.contribution(
        rt, SECRETS["spam text"], status="spam", channel="telegram", person=chat, received_at=_at(4)
    )
    seed.contribution(
        rt,
        SECRETS["other campaign"],
        campaign="budget",
        status="published",
        public_text=SECRETS["other campaign"],
        channel="sms",
        received_at=_at(1),
    )
    return seen


# -- reading the HTML back ---------------------------------------------------------------------

_VOID = {"meta", "br", "img", "input", "link", "hr", "source", "area", "col", "wbr", "base"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)

    def text(self) -> str:
        return " ".join(" ".join([*self.parts, *(c.text() for c in self.children)]).split()).strip()

    def walk(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            yield from child.walk()

    def find_all(self, tag: str, **attrs: str) -> list[Node]:
        return [
            n
            for n in self.walk()
            if n.tag == tag and all(n.attrs.get(k) == v for k, v in attrs.items())
        ]

    def by_id(self, ident: str) -> Node:
        found = [n for n in self.walk() if n.attrs.get("id") == ident]
        assert len(found) == 1, f"{len(found)} elements with id {ident}"
        return found[0]


class _Tree(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].parts.append(data)


def parse(document: str) -> Node:
    tree = _Tree()
    tree.feed(document)
    tree.close()
    assert tree.stack == [tree.root], "unclosed elements"
    return tree.root


def table_rows(table: Node) -> dict[str, int]:
    rows = {}
    for tr in table.find_all("tbody")[0].find_all("tr"):
        cells = [c for c in tr.children if c.tag in ("th", "td")]
        rows[cells[0].text()] = int(cells[1].text())
    return rows


# -- running the command -----------------------------------------------------------------------


@pytest.fixture
def run(runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    import os

    for key in list(os.environ):
        if key.startswith("GATEWAY_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    env = cli_env(runtime.settings)

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(main, ["report", *args], env=env)

    return invoke


def _db_counts(rt: Runtime, column: Any) -> dict[Any, int]:
    with rt.sessions() as session:
        rows = session.execute(
            select(column, func.count())
            .join(Campaign, Contribution.campaign_id == Campaign.id)
            .where(Campaign.slug == "parc")
            .group_by(column)
        ).all()
    return {value: n for value, n in rows}


def test_the_report_shows_the_databases_counts_as_charts_with_their_data(
    runtime: Runtime, run: Any, tmp_path: Path
) -> None:
    seen = _seed(runtime)
    output = tmp_path / "bilan.html"
    result = run("--campaign", "parc", "--output", str(output))
    assert result.exit_code == 0, result.output
    document = parse(output.read_text(encoding="utf-8"))

    assert document.find_all("html")[0].attrs["lang"] == "fr"
    assert document.find_all("h1")[0].text() == "Rénovation du quartier du Parc"
    assert "Que souhaitez-vous pour le futur parc ?" in document.text()
    assert document.by_id("period").text() == (
        "Contributions reçues du 2 mars 2026 au 10 mars 2026."
    )

    statuses = _db_counts(runtime, Contribution.status)
    totals = {
        name: int(document.by_id(f"total-{name}").text())
        for name in ("received", "published", "rejected", "pending", "spam", "answered")
    }
    assert totals == {
        "received": sum(statuses.values()),
        "published": statuses["published"],
        "rejected": statuses["rejected"],
        "pending": statuses["pending"],
        "spam": statuses["spam"],
        "answered": 4,
    }
    assert totals["received"] == 10  # the other campaign's contribution is not counted

    channels = {
        "sms": "SMS",
        "voice": "Téléphone (répondeur)",
        "telegram": "Telegram",
        "email": "E-mail",
    }
    assert table_rows(document.by_id("data-channel")) == {
        channels[c]: n for c, n in _db_counts(runtime, Contribution.channel).items()
    }
    categories = {
        "proposal": "Proposition",
        "question": "Question",
        "diagnostic": "Constat",
        None: "Non classée",
    }
    assert table_rows(document.by_id("data-category")) == {
        categories[c]: n for c, n in _db_counts(runtime, Contribution.category).items()
    }
    # A neighbourhood no public contribution carries and the campaign does not list is
    # counted, not named.
    assert table_rows(document.by_id("data-neighbourhood")) == {
        "Parc Nord": 1,
        "Parc Sud": 2,
        "Centre": 1,
        "Université": 3,
        "Quartier non précisé": 2,
        "Autre lieu": 1,
    }
    per_day = table_rows(document.by_id("data-day"))
    assert sum(per_day.values()) == totals["received"]
    assert per_day["3 mars 2026"] == 2 and per_day["6 mars 2026"] == 2
    assert per_day["4 mars 2026"] == 2  # a rejected one and the spam: counted, never quoted
    assert table_rows(document.by_id("data-answer_state")) == {
        "Pas encore de réponse": 1,
        "À l’étude": 1,
        "Acceptée": 2,
        "Non retenue": 0,
        "Réalisée": 1,
    }

    # Every chart: an SVG image named by its title and described by its values, a caption,
    # and the same numbers as a table.
    figures = document.find_all("figure")
    assert [f.attrs["id"] for f in figures] == [
        "chart-day",
        "chart-channel",
        "chart-neighbourhood",
        "chart-category",
        "chart-answer_state",
    ]
    for figure in figures:
        (svg,) = figure.find_all("svg")
        assert svg.attrs["role"] == "img"
        title_id, desc_id = svg.attrs["aria-labelledby"].split()
        title = svg.by_id(title_id).text()
        assert title and figure.find_all("figcaption")[0].text() == title
        description = svg.by_id(desc_id).text()
        rows = table_rows(figure.find_all("table")[0])
        for label, count in rows.items():
            if figure.attrs["id"] != "chart-day":  # the day chart names days as dd/mm/yyyy
                assert f"{label}: {count}" in description
        assert figure.find_all("caption")[0].text().endswith(title)

    rejections = table_rows(document.by_id("rejections"))
    assert rejections == {"Hors sujet": 2, "Propos injurieux": 1}

    quoted = [q.text() for q in document.by_id("selection").find_all("blockquote")]
    # The most recent of each neighbourhood (the one without counts as one), then the rest.
    assert quoted == [
        "Les allées sont mal éclairées le soir",
        " ".join(XSS.split()),
        "Un terrain de basket pour les jeunes",
        "Des bancs à l’ombre, s’il vous plaît",
        "Plus de bancs près du kiosque",
    ]
    assert set(quoted) == {" ".join(t.split()) for t in seen.published}
    provenances = [p.text() for p in document.by_id("selection").find_all("p")]
    assert provenances[0].startswith("recueilli par e-mail le 9 mars à 11 h 04, quartier Centre")

    answers = document.find_all("article")
    assert [a.attrs["data-state"] for a in answers] == ["done", "evaluating", "accepted"]
    accepted = answers[2]
    assert "La ville installera dix bancs d’ici l’été." in accepted.text()
    # One answer given to two contributions is shown once, with both.
    assert [q.text() for q in accepted.find_all("blockquote")] == [
        "Plus de bancs près du kiosque",
        "Des bancs à l’ombre, s’il vous plaît",
    ]
    assert "Réponse du 20 mars 2026" in accepted.text()


def test_nothing_personal_or_unpublished_and_no_external_resource(
    runtime: Runtime, run: Any, tmp_path: Path
) -> None:
    _seed(runtime)
    # A label is text too: a neighbourhood a moderator typed reaches the charts' SVG.
    seed.contribution(
        runtime,
        "ORIGINAL-LABEL",
        status="published",
        public_text="Un quartier au nom piégé",
        person=0,
        received_at=_at(7),
        neighbourhood='<svg onload="alert(2)">Parc</svg>',
    )
    output = tmp_path / "bilan.html"
    assert run("--campaign", "parc", "--output", str(output)).exit_code == 0
    data = output.read_bytes()
    text = data.decode("utf-8")

    needles = [*SECRETS.values(), CHAT_ID, EMAIL, "ORIGINAL-", "RAW-TRANSCRIPT"]
    needles += phone_forms(SMS_NUMBER) + phone_forms(VOICE_NUMBER)
    found = [n for n in needles if n.encode() in data]
    assert found == []
    with runtime.sessions() as session:
        references = session.scalars(
            select(Contribution.reference).where(Contribution.status.in_(("pending", "spam")))
        ).all()
        campaign = session.scalars(select(Campaign).where(Campaign.slug == "parc")).one()
        pseudonyms = {r.contributor for r in public_records(session, campaign, runtime.vault)}
    assert references and not [r for r in references if r in text]
    # The report names no contributor, not even by the open data's pseudonym.
    named = {p for p in pseudonyms if p}
    assert len(named) == 4  # the four residents: the scan looks for real ids
    assert not [p for p in named if p in text]

    # The XSS payload is shown as text, never as markup.
    document = parse(text)
    assert document.find_all("script") == []
    assert document.find_all("img") == []
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in text or (
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text
    )
    assert not [n for n in document.walk() if any(k.startswith("on") for k in n.attrs)]
    assert len(document.find_all("svg")) == 5  # the five charts, and no injected one
    assert '<svg onload="alert(2)">Parc</svg>' in document.by_id("data-neighbourhood").text()
    assert "&lt;svg onload=&#34;alert(2)&#34;&gt;" in text  # escaped in the table and charts

    # Self-contained: nothing to fetch, no script, no web font.
    for node in document.walk():
        for name, value in node.attrs.items():
            assert name not in ("src", "href", "xlink:href", "srcset", "action", "poster"), (
                node.tag,
                name,
                value,
            )
        assert node.tag not in ("link", "iframe", "object", "embed", "script", "base")
    (style,) = document.find_all("style")
    css = style.text()
    assert "url(" not in css and "@import" not in css and "@font-face" not in css
    assert "@media print" in css
    policy = document.find_all("meta", **{"http-equiv": "Content-Security-Policy"})
    assert policy and "default-src 'none'" in policy[0].attrs["content"]
    # The only URL in the file is the SVG namespace, which names and fetches nothing.
    assert set(re.findall(r"https?://[^\s\"'<>]+", text)) == {"http://www.w3.org/2000/svg"}


def test_the_report_in_english(runtime: Runtime, run: Any, tmp_path: Path) -> None:
    _seed(runtime)
    output = tmp_path / "report.html"
    result = run("--campaign", "parc", "--output", str(output), "--language", "en")
    assert result.exit_code == 0, result.output
    document = parse(output.read_text(encoding="utf-8"))
    assert document.find_all("html")[0].attrs["lang"] == "en"
    assert document.by_id("period").text() == (
        "Contributions received from March 2, 2026 to March 10, 2026."
    )
    assert document.by_id("totals-heading").text() == "In figures"
    assert set(table_rows(document.by_id("data-channel"))) == {
        "SMS",
        "Phone (answering machine)",
        "Telegram",
        "Email",
    }
    assert "Neighbourhood not given" in table_rows(document.by_id("data-neighbourhood"))
    provenances = [p.text() for p in document.by_id("selection").find_all("p")]
    assert provenances[0].startswith("received by email on March 9 at 11:04, Centre neighbourhood")
    answers = {a.attrs["data-state"]: a for a in document.find_all("article")}
    # The English answer where there is one; the French one, marked as such, where not.
    assert "The street lights were replaced in April." in answers["done"].text()
    assert "remplacés" not in answers["done"].text()
    (french,) = answers["evaluating"].find_all("p", **{"class": "answer-text", "lang": "fr"})
    assert french.text() == "Le service des sports étudie un terrain."
    assert "available in French only" in answers["evaluating"].text()
    # No French label left in the page's own words.
    for word in ("Contributions reçues", "Quartier", "Réponse", "Refusées", "Pas encore"):
        assert word not in document.find_all("main")[0].text(), word


def test_standard_output_selection_size_and_an_empty_campaign(runtime: Runtime, run: Any) -> None:
    _seed(runtime)
    result = run("--campaign", "parc", "--selection", "2")
    assert result.exit_code == 0, result.output
    document = parse(result.stdout)
    # The two most recent neighbourhoods' latest: Centre, then the one without neighbourhood.
    assert [q.text() for q in document.by_id("selection").find_all("blockquote")] == [
        "Les allées sont mal éclairées le soir",
        " ".join(XSS.split()),
    ]

    empty = run("--campaign", "ecoles")
    assert empty.exit_code == 0, empty.output
    document = parse(empty.stdout)
    assert document.by_id("period").text() == "Aucune contribution reçue pour l’instant."
    assert int(document.by_id("total-received").text()) == 0
    assert len(document.find_all("svg")) == 5
    assert "Aucune contribution publiée pour l’instant." in document.text()
    assert "La ville n’a pas encore répondu." in document.text()


def test_bad_input_gets_a_clear_error(runtime: Runtime, run: Any) -> None:
    missing = run("--campaign", "nulle-part")
    assert missing.exit_code != 0
    assert "no campaign 'nulle-part'" in missing.output
    language = run("--campaign", "parc", "--language", "de")
    assert language.exit_code != 0 and "'de' is not one of 'fr', 'en'" in language.output
    size = run("--campaign", "parc", "--selection", "-1")
    assert size.exit_code != 0 and "--selection" in size.output


def test_the_file_is_written_whole_or_not_at_all(
    runtime: Runtime, run: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed(runtime)
    output = tmp_path / "bilan.html"
    output.write_text("the previous report", encoding="utf-8")

    assert run("--campaign", "nulle-part", "--output", str(output)).exit_code != 0
    assert output.read_text(encoding="utf-8") == "the previous report"

    # A failure while writing leaves the previous file and no partial one.
    from gateway.cli import publication as cli_publication

    real_output = cli_publication._output

    class Broken:
        def __init__(self, stream: Any) -> None:
            self.stream = stream

        def write(self, data: bytes) -> int:
            self.stream.write(data[: len(data) // 2])
            raise OSError("disk full")

    def failing(path: Path | None, binary: bool = False) -> Any:
        from contextlib import contextmanager

        @contextmanager
        def wrapped() -> Iterator[Any]:
            with real_output(path, binary) as stream:
                yield Broken(stream)

        return wrapped()

    monkeypatch.setattr(cli_publication, "_output", failing)
    broken = run("--campaign", "parc", "--output", str(output))
    assert broken.exit_code != 0
    assert output.read_text(encoding="utf-8") == "the previous report"
    assert sorted(p.name for p in tmp_path.iterdir() if "bilan" in p.name) == ["bilan.html"]

    monkeypatch.setattr(cli_publication, "_output", real_output)
    result = run("--campaign", "parc", "--output", str(output))
    assert result.exit_code == 0, result.output
    assert f"written to {output}" in result.stderr
    written = output.read_text(encoding="utf-8")
    assert written.startswith("<!DOCTYPE html>") and written.rstrip().endswith("</html>")
    assert sorted(p.name for p in tmp_path.iterdir() if "bilan" in p.name) == ["bilan.html"]
