"""Decidim import files: proposals (`gateway export --format decidim-*`), answers
(`gateway decidim answers`) and reading Decidim's export back (`gateway decidim ids`).

Every row is checked against Decidim's proposal rules as written in its source (see
gateway/publication/decidim_files.py), independently of the code that builds the rows."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from openpyxl import Workbook, load_workbook

from gateway.cli import main as cli
from gateway.publication import decidim_files, decidim_text
from gateway.runtime import Runtime
from gateway.settings import Settings
from tests.console import seed
from tests.helpers import cli_env
from tests.privacy_scan import phone_forms

PHONE = "+33612345678"
EMAIL = "marie.dupont@example.org"
ORIGINAL = "Appelez-moi au 06 12 34 56 78 : il faut plus de bancs au parc. Et des fontaines."
SHOUTED = "IL FAUT DES LAMPADAIRES DANS L'ALLÉE DU PARC !!!"


# --- Decidim's rules, restated here from its source so the tests do not trust the code ---


def decidim_title_ok(title: str) -> bool:
    caps = len(re.findall(r"[A-Z]", title))
    return (
        16 <= len(title) <= 150
        and not re.search(r"[A-z]{35,}", title)
        and not re.search(r"[!?¡¿]{2,}", title)
        and not re.match(r"[a-z]", title)
        and (title[0].isupper() or title[0].isdigit())
        and (caps == 0 or caps < len(title) // 4)
    )


def decidim_body_ok(body: str) -> bool:
    caps = len(re.findall(r"[A-Z]", body))
    return (
        len(body) >= 16
        and not re.search(r"[A-z]{35,}", body)
        and not re.search(r"[!?¡¿]{2,}", body)
        and not re.search(r"^[a-z]", body, re.MULTILINE)
        and (caps == 0 or caps < len(body) // 4)
    )


TITLES = [
    ("Plus de bancs dans le parc", True),
    ("Des bancs svp", False),  # 13 characters
    ("Quinze lettres.", False),  # 15: the etiquette validator wants more than 15
    ("Seize caractères", True),  # 16
    ("A" + "b" * 149, False),  # 150 characters but one 150-letter run
    ("Plus de bancs " * 11 + "au parc", False),  # 161 characters
    ("Des bancs " * 15, True),  # exactly 150
    ("Des bancs " * 15 + "x", False),  # 151
    ("plus de bancs dans le parc", False),  # lower-case start
    ("élargir le trottoir de la rue", False),  # lower-case, accented
    ("« Plus de bancs » dans le parc", False),  # not a capital letter first
    ("2 bancs de plus dans le parc", True),  # a digit: Decidim accepts it
    ("PLUS DE BANCS DANS LE PARC", False),  # shouting
    ("Plus de bancs au parc de la RATP", True),  # 5 capitals of 32: under a quarter
    ("Bancs RATP SNCF EDF", False),  # 12 capitals of 19
    ("Le RER A partira tôt", False),  # 5 capitals of 20: a quarter (under a third)
    ("Le RER A partira plus tôt", True),  # 5 capitals of 25
    ("Des bancs au parc, vite !!", False),  # repeated marks
    ("Des bancs au parc, pourquoi ?!", False),
    ("Des bancs au parc, pourquoi ?", True),
    ("Un " + "a" * 34 + " mot", True),  # a 34-letter run
    ("Un " + "a" * 35 + " mot", False),  # a 35-letter run
    ("Un " + "é" * 40 + " mot", True),  # accented letters: not in Decidim's [A-z]
]


@pytest.mark.parametrize(("title", "valid"), TITLES, ids=[t[:30] for t, _ in TITLES])
def test_titles_are_judged_as_decidim_judges_them(title: str, valid: bool):
    assert decidim_title_ok(title) is valid  # the table itself is right
    assert (decidim_text.title_problems(title) == []) is valid


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("Il faut plus de bancs au parc. Et des fontaines.", "Il faut plus de bancs au parc"),
        ("il faut plus de bancs au parc", "Il faut plus de bancs au parc"),
        ("Des bancs. Et des fontaines aussi.", "Des bancs. Et des fontaines aussi"),
        ("Pourquoi pas de bancs au parc ?? Merci", "Pourquoi pas de bancs au parc ?"),
        ("« Des bancs » au parc, s'il vous plaît", "Des bancs » au parc, s'il vous plaît"),
        ("- =SOMME(A1) des bancs pour tous", "SOMME(A1) des bancs pour tous"),
        (SHOUTED, "Il faut des lampadaires dans l'allée du parc !"),
        ("  Des   bancs\n\nau   parc   partout  ", "Des bancs au parc partout"),
    ],
)
def test_a_title_is_derived_from_the_public_text(text: str, title: str):
    assert decidim_text.derive_title(text) == title


def test_a_long_first_sentence_is_cut_at_a_word_boundary():
    text = ("Il faudrait installer des bancs confortables " * 6).strip() + ". Merci."
    title = decidim_text.derive_title(text)
    assert len(title) <= 150 and title.endswith("…")
    assert text.startswith(title[:-1]) and text[len(title) - 1] == " "  # a whole word
    assert decidim_title_ok(title)


@pytest.mark.parametrize(
    "version", ["0.23", "0.23.5", "zero", "", "1"], ids=["0.23", "0.23.5", "word", "empty", "1"]
)
def test_a_version_before_0_24_or_not_a_version_is_refused(version: str):
    with pytest.raises(ValueError):
        decidim_files.parse_version(version)


def test_a_text_cell_stays_text_in_every_format(tmp_path: Path):
    """A formula-looking answer or a ';' and quotes inside a body come back exactly as
    written, and an XLSX cell is never a formula (Decidim's reader would see it empty)."""
    rows = [{"id": 1, "answer/fr": '=1+1; « oui » "non"\nsuite'}]
    for fmt in ("csv", "json", "xlsx"):
        path = tmp_path / f"cells.{fmt}"
        with path.open("wb") as stream:
            decidim_files.write(["id", "answer/fr"], rows, fmt, stream)
        assert read_rows(path, fmt)[0]["answer/fr"] == rows[0]["answer/fr"], fmt
    cell = load_workbook(tmp_path / "cells.xlsx").worksheets[0]["B2"]
    assert cell.data_type == "s"


def test_categories_before_0_30_and_taxonomies_from_0_30():
    assert "category/id" in decidim_files.proposal_columns(decidim_files.parse_version("0.24"))
    assert "category/id" in decidim_files.proposal_columns(decidim_files.parse_version("0.27.6"))
    columns = decidim_files.proposal_columns(decidim_files.parse_version("0.30.1"))
    assert "taxonomies/ids" in columns and "category/id" not in columns


# --- the campaign, as the gateway holds it ----------------------------------------------


def seed_campaign(rt: Runtime) -> dict[str, int]:
    """Published, rejected, pending and answered contributions on every channel."""
    sms = seed.contributor(rt, PHONE, "sms")
    mail = seed.contributor(rt, EMAIL, "email")
    ids = {
        "benches": seed.contribution(
            rt,
            ORIGINAL,
            person=sms,
            status="published",
            public_text="Il faut plus de bancs au parc. Et des fontaines.",
            neighbourhood="Parc Nord",
            themes=["Espaces verts"],
        ),
        "shouted": seed.contribution(
            rt, SHOUTED, channel="voice", status="published", public_text=SHOUTED
        ),
        "long": seed.contribution(
            rt,
            "Écrit par " + EMAIL,
            person=mail,
            channel="email",
            status="published",
            public_text=("Il faudrait des bancs confortables et ombragés " * 5).strip()
            + ". Et de l'eau.",
            neighbourhood="Centre",
            themes=["Jeux et sport", "Espaces verts"],
        ),
        "formula": seed.contribution(
            rt,
            "=HYPERLINK(x) plus de jeux",
            channel="telegram",
            status="published",
            public_text="=HYPERLINK(x) plus de jeux pour les enfants",
        ),
        "short": seed.contribution(rt, "Oui", status="published", public_text="Oui"),
        "long_word": seed.contribution(
            rt,
            "x",
            status="published",
            public_text="Il faut " + "tres" * 10 + " de bancs au parc",
        ),
        "rejected": seed.contribution(
            rt,
            "Des bancs pour les voisins du 12",
            status="rejected",
            decision_reason="hors sujet",
            public_text="Des bancs pour les voisins du 12 rue X",
        ),
        "pending": seed.contribution(rt, "Une piscine au parc, vite"),
        "in_decidim": seed.contribution(
            rt,
            "Des pistes cyclables partout",
            status="published",
            public_text="Des pistes cyclables partout",
            decidim_id="77",
        ),
    }
    return ids


def gateway(settings: Settings, *args: str) -> Any:
    result = CliRunner().invoke(cli, list(args), env=cli_env(settings))
    assert result.exit_code == 0, result.output + result.stderr
    return result


def reference(rt: Runtime, contribution_id: int) -> str:
    return seed.get(rt, contribution_id).reference


def read_rows(path: Path, fmt: str) -> list[dict[str, Any]]:
    data = path.read_bytes()
    if fmt == "csv":
        assert not data.startswith(b"\xef\xbb\xbf")  # Decidim's reader keeps a BOM in the header
        return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline=""), delimiter=";"))
    if fmt == "json":
        rows = json.loads(data)
        assert all(list(r) == list(rows[0]) for r in rows)  # Decidim takes the first's keys
        return rows
    sheet = load_workbook(path).worksheets[0]
    lines = list(sheet.iter_rows(values_only=True))
    return [dict(zip(lines[0], line, strict=True)) for line in lines[1:]]


def output_text(path: Path) -> str:
    """Everything a file says, an XLSX's compressed XML included."""
    data = path.read_bytes()
    if data.startswith(b"PK"):
        with zipfile.ZipFile(path) as archive:
            return "".join(archive.read(n).decode("utf-8", "replace") for n in archive.namelist())
    return data.decode("utf-8")


def assert_nothing_personal(text: str) -> None:
    for needle in [
        *phone_forms(PHONE),
        EMAIL,
        ORIGINAL,
        "Écrit par",
        "HYPERLINK(x) plus de jeux\n",
    ]:
        assert needle not in text, needle
    assert "voisins du 12" not in text  # the rejected one's text
    assert "piscine" not in text  # the pending one


@pytest.mark.parametrize("fmt", ["csv", "json", "xlsx"])
def test_the_proposals_file_holds_valid_published_rows_only(
    runtime: Runtime, settings: Settings, tmp_path: Path, fmt: str
):
    ids = seed_campaign(runtime)
    out = tmp_path / f"proposals.{fmt}"
    result = gateway(
        settings,
        "export",
        "--campaign",
        "parc",
        "--format",
        f"decidim-{fmt}",
        "--output",
        str(out),
        "--decidim-version",
        "0.27",
    )
    rows = read_rows(out, fmt)
    assert list(rows[0]) == [
        "title/fr",
        "body/fr",
        "scope/id",
        "category/id",
        "address",
        "latitude",
        "longitude",
    ]
    written = {re.search(r"réf\. (\S+)$", r["body/fr"]).group(1): r for r in rows}  # type: ignore[union-attr]
    expected = {
        reference(runtime, ids[k]) for k in ("benches", "shouted", "long", "formula", "short")
    }
    assert set(written) == expected
    for row in rows:
        assert decidim_title_ok(row["title/fr"]), row["title/fr"]
        assert decidim_body_ok(row["body/fr"]), row["body/fr"]
    benches = written[reference(runtime, ids["benches"])]
    assert benches["title/fr"] == "Il faut plus de bancs au parc"
    text, footer = benches["body/fr"].split("\n\n")
    assert text == "Il faut plus de bancs au parc. Et des fontaines."
    assert footer.startswith("Recueilli par SMS le ") and "quartier Parc Nord" in footer
    assert footer.endswith(f" — réf. {reference(runtime, ids['benches'])}")
    shouted = written[reference(runtime, ids["shouted"])]
    assert shouted["body/fr"].startswith("Il faut des lampadaires dans l'allée du parc !\n\n")
    formula = written[reference(runtime, ids["formula"])]
    assert formula["title/fr"].startswith("HYPERLINK") and formula["body/fr"].startswith("HYPER")
    # A text too short for a title is titled with its channel, as direct publication does.
    assert written[reference(runtime, ids["short"])]["title/fr"] == "Oui (contribution par SMS)"
    # Not written, and said why (the reference, never the text).
    line = next(
        x for x in result.stderr.splitlines() if x.startswith(reference(runtime, ids["long_word"]))
    )
    assert "not written" in line and "35 or more letters" in line
    assert f"{reference(runtime, ids['in_decidim'])}: already in Decidim (proposal 77)" in (
        result.stderr
    )
    assert "5 proposals written" in result.stderr and "1 refused" in result.stderr
    assert_nothing_personal(output_text(out) + result.stderr)


def test_decidim_ids_fill_the_scope_category_and_taxonomy_columns(
    runtime: Runtime, settings: Settings, tmp_path: Path
):
    ids = seed_campaign(runtime)
    mapping = tmp_path / "decidim.yaml"
    mapping.write_text(
        "scopes: {Parc Nord: 12, Centre: 13}\n"
        "categories: {Espaces verts: 3, Jeux et sport: 4}\n"
        "taxonomies: {Espaces verts: 31, Jeux et sport: 32}\n",
        encoding="utf-8",
    )
    for version, column, long_value in (
        ("0.26", "category/id", "4"),
        ("0.30", "taxonomies/ids", "32,31"),
    ):
        out = tmp_path / f"p-{version}.csv"
        gateway(
            settings,
            "export",
            "--campaign",
            "parc",
            "--format",
            "decidim-csv",
            "--output",
            str(out),
            "--decidim-version",
            version,
            "--decidim-mapping",
            str(mapping),
        )
        rows = {r["body/fr"].rsplit(" ", 1)[1]: r for r in read_rows(out, "csv")}
        benches, long = (
            rows[reference(runtime, ids["benches"])],
            rows[reference(runtime, ids["long"])],
        )
        assert (benches["scope/id"], long["scope/id"]) == ("12", "13")
        assert benches[column] == ("3" if column == "category/id" else "31")
        assert long[column] == long_value  # the themes' order; one category only before 0.30
        assert rows[reference(runtime, ids["shouted"])][column] == ""


def test_a_bad_mapping_file_or_version_is_a_clear_error(
    runtime: Runtime, settings: Settings, tmp_path: Path
):
    mapping = tmp_path / "decidim.yaml"
    mapping.write_text("scopes: {Parc Nord: douze}\n", encoding="utf-8")
    result = CliRunner().invoke(
        cli,
        [
            "export",
            "--campaign",
            "parc",
            "--format",
            "decidim-csv",
            "--decidim-mapping",
            str(mapping),
        ],
        env=cli_env(settings),
    )
    assert result.exit_code == 1 and "scopes must map names to Decidim ids" in result.stderr
    result = CliRunner().invoke(
        cli,
        ["export", "--campaign", "parc", "--format", "decidim-json", "--decidim-version", "0.22"],
        env=cli_env(settings),
    )
    assert result.exit_code == 1 and "before 0.24" in result.stderr


# --- Decidim's export, read back --------------------------------------------------------

# The columns Decidim's admin export writes (proposal_serializer.rb, flattened with "/"),
# as in decidim-dev/lib/decidim/dev/assets/import_proposals.csv.
EXPORT_COLUMNS = [
    "id",
    "category/id",
    "category/name/fr",
    "scope/id",
    "scope/name/fr",
    "participatory_space/id",
    "participatory_space/url",
    "component/id",
    "title/fr",
    "body/fr",
    "state",
    "reference",
    "answer/fr",
    "supports",
    "comments",
    "published_at",
    "url",
]


def decidim_export(proposals: list[dict[str, Any]], fmt: str, path: Path) -> Path:
    """A file shaped like Decidim's own proposals export for ``proposals`` (title, body)."""
    rows = []
    for n, p in enumerate(proposals):
        ident = 101 + n
        rows.append(
            {
                "id": ident,
                "category": {"id": None, "name": {"fr": ""}},
                "scope": {"id": None, "name": {"fr": ""}},
                "participatory_space": {
                    "id": 1,
                    "url": "https://decidim.example.org/processes/parc",
                },
                "component": {"id": 7},
                "title": {"fr": p["title/fr"]},
                # 0.28 and later store the body as HTML
                "body": {"fr": "<p>" + p["body/fr"].replace("\n\n", "</p><p>") + "</p>"},
                "state": "",
                "reference": f"NAN-PROP-2026-12-{ident}",
                "answer": {"fr": ""},
                "supports": 0,
                "comments": 0,
                "published_at": "2026-12-07 08:00:00 UTC",
                "url": f"https://decidim.example.org/processes/parc/f/7/proposals/{ident}",
            }
        )
    rows.append(
        {
            **rows[0],
            "id": 999,
            "title": {"fr": "Une proposition venue du site"},
            "body": {"fr": "<p>Écrite directement sur Decidim, sans référence.</p>"},
        }
    )
    if fmt == "json":
        path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
        return path
    flat = [decidim_files._flatten(r) for r in rows]
    if fmt == "csv":
        with path.open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, EXPORT_COLUMNS, delimiter=";", extrasaction="ignore")
            writer.writeheader()
            writer.writerows(flat)
        return path
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(EXPORT_COLUMNS)
    for r in flat:
        sheet.append([r.get(c) for c in EXPORT_COLUMNS])
    book.save(path)
    if fmt == "zip":
        zipped = path.with_suffix(".zip")
        with zipfile.ZipFile(zipped, "w") as archive:
            archive.write(path, "proposals.xlsx")
        return zipped
    return path


@pytest.mark.parametrize("fmt", ["csv", "json", "xlsx", "zip"])
def test_decidim_ids_maps_decidims_export_back_and_is_idempotent(
    runtime: Runtime, settings: Settings, tmp_path: Path, fmt: str
):
    ids = seed_campaign(runtime)
    ours = tmp_path / "proposals.json"
    gateway(
        settings, "export", "--campaign", "parc", "--format", "decidim-json", "--output", str(ours)
    )
    proposals = json.loads(ours.read_text(encoding="utf-8"))
    export = decidim_export(proposals, fmt, tmp_path / f"export.{'xlsx' if fmt == 'zip' else fmt}")

    first = gateway(settings, "decidim", "ids", str(export))
    assert "5 matched, 1 unmatched, 0 already set, 0 conflicting" in first.stdout
    by_reference = {
        seed.get(runtime, i).reference: seed.get(runtime, i).decidim_id for i in ids.values()
    }
    for n, p in enumerate(proposals):
        assert by_reference[p["body/fr"].rsplit(" ", 1)[1]] == str(101 + n)
    assert seed.get(runtime, ids["in_decidim"]).decidim_id == "77"  # untouched
    assert seed.get(runtime, ids["long_word"]).decidim_id is None  # never written

    again = gateway(settings, "decidim", "ids", str(export))
    assert "0 matched, 1 unmatched, 5 already set, 0 conflicting" in again.stdout
    # Once in Decidim, a contribution is not offered for import again.
    rerun = gateway(settings, "export", "--campaign", "parc", "--format", "decidim-csv")
    assert read_rows_from_text(rerun.stdout) == []
    assert "6 already in Decidim" in rerun.stderr


def read_rows_from_text(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline=""), delimiter=";"))


def test_a_file_that_is_not_decidims_export_is_a_clear_error(
    runtime: Runtime, settings: Settings, tmp_path: Path
):
    wrong = tmp_path / "notes.csv"
    wrong.write_text("title;text\nBancs;Des bancs\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["decidim", "ids", str(wrong)], env=cli_env(settings))
    assert result.exit_code == 1 and "no 'id' column" in result.stderr
    text = tmp_path / "export.txt"
    text.write_text("id\n1\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["decidim", "ids", str(text)], env=cli_env(settings))
    assert result.exit_code == 1 and ".csv, .json, .xlsx or .zip" in result.stderr


def test_a_proposal_imported_twice_keeps_its_first_id(
    runtime: Runtime, settings: Settings, tmp_path: Path
):
    ids = seed_campaign(runtime)
    ref = reference(runtime, ids["benches"])
    export = tmp_path / "export.json"
    export.write_text(
        json.dumps(
            [
                {"id": 5, "body": {"fr": f"Des bancs\n\nRecueilli par SMS — réf. {ref}"}},
                {"id": 6, "body": {"fr": f"Des bancs\n\nRecueilli par SMS — réf. {ref}"}},
            ]
        ),
        encoding="utf-8",
    )
    result = gateway(settings, "decidim", "ids", str(export))
    assert "1 matched, 0 unmatched, 0 already set, 1 conflicting" in result.stdout
    assert f"{ref}: keeps Decidim id 5; proposal 6" in result.stderr
    assert seed.get(runtime, ids["benches"]).decidim_id == "5"


# --- the city's answers ----------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "json", "xlsx"])
def test_the_answers_file_carries_decidims_ids_and_states(
    runtime: Runtime, settings: Settings, tmp_path: Path, fmt: str
):
    sms = seed.contributor(runtime, PHONE, "sms")
    answered = {
        state: seed.contribution(
            runtime,
            ORIGINAL,
            person=sms,
            status="published",
            public_text=f"Des bancs ({state})",
            answer_state=state,
            answer_text=f"Réponse {state}",
            decidim_id=str(n),
            answer_text_en="Answer in English" if state == "evaluating" else None,
        )
        for n, state in enumerate(("evaluating", "accepted", "rejected", "done"), start=40)
    }
    no_id = seed.contribution(
        runtime,
        "x",
        status="published",
        public_text="Des bancs",
        answer_state="accepted",
        answer_text="Oui",
    )
    seed.contribution(runtime, "x", status="published", public_text="Sans réponse", decidim_id="50")
    seed.contribution(
        runtime,
        "x",
        status="rejected",
        public_text="Rejetée",
        decision_reason="non",
        answer_state="accepted",
        answer_text="Oui",
        decidim_id="51",
    )
    out = tmp_path / f"answers.{fmt}"
    result = gateway(
        settings, "decidim", "answers", "--campaign", "parc", "--format", fmt, "--output", str(out)
    )
    rows = read_rows(out, fmt)
    assert list(rows[0]) == ["id", "state", "status", "answer/fr", "answer/en"]
    got = {
        str(r["id"]): (r["state"], r["status"], r["answer/fr"], r["answer/en"] or None)
        for r in rows
    }
    assert got == {
        "40": ("evaluating", "evaluating", "Réponse evaluating", "Answer in English"),
        "41": ("accepted", "accepted", "Réponse accepted", None),
        "42": ("rejected", "rejected", "Réponse rejected", None),
        "43": ("accepted", "accepted", "Réponse done", None),  # Decidim has no "done"
    }
    if fmt != "csv":
        assert {type(r["id"]) for r in rows} == {int}
    assert f"{reference(runtime, no_id)}: answered but has no Decidim id yet" in result.stderr
    assert reference(runtime, answered["done"]) not in output_text(out)
    assert_nothing_personal(output_text(out) + result.stderr)
