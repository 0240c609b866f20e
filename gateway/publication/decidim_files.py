"""Decidim import files (every version from 0.24): proposals, answers, and reading back the ids.

What Decidim's admin "Import proposals from a file" / "Import answers from a file" accepts,
checked in Decidim's source (github.com/decidim/decidim):

- decidim-admin/lib/decidim/admin/import/readers/{csv,json,xlsx}.rb: CSV is read with
  ``CSV.read(file, col_sep: ";")`` (no byte-order mark handling: a BOM would become part of
  the first header, which then no longer matches); JSON is an array of objects whose *first*
  object's keys are the headers for every row (so every object here has the same keys in
  the same order); XLSX is the first worksheet, first row the headers.
- decidim-admin/lib/decidim/admin/import/creator.rb (``locale_hasher``): ``title/<locale>``
  and ``body/<locale>`` columns, one per organisation locale; a missing or empty one is
  skipped. decidim-admin/lib/decidim/admin/import/verifier.rb: the headers the component
  requires (``required_localized_headers``: the organisation's *default* locale only) and no
  duplicate header; then every record must be valid, or the whole file is refused.
- decidim-proposals/lib/decidim/proposals/import/proposals_verifier.rb: requires
  ``title/<default locale>`` and ``body/<default locale>``.
- decidim-proposals/lib/decidim/proposals/import/proposal_creator.rb: reads ``scope/id``,
  ``category/id`` (categories, until 0.30 replaced them) or ``taxonomies/ids`` (0.30 and
  later, comma-separated), ``address``, ``latitude``, ``longitude``; any other column is
  ignored, so a column a version does not read is harmless.
- decidim-proposals/lib/decidim/proposals/import/proposal_answer_creator.rb: ``id`` (the
  proposal's), ``state`` (a proposal state token of the component: evaluating, accepted,
  rejected) and ``answer/<locale>``; proposals_answers_verifier.rb requires ``id``, the
  answer in the default locale and, depending on the version, ``state`` or ``status``: both
  are written, with the same value.
- decidim-proposals/lib/decidim/proposals/proposal_serializer.rb: the admin export ("Export
  proposals", CSV/JSON/Excel, sent as a zip) carries ``id`` and ``body`` (``body/<locale>``
  once flattened), which ``read_export`` reads back.

Validation: the import itself only checks the model (title and body present), but a proposal
that breaks the forms' rules cannot be edited or amended afterwards and shows as shouting or
truncated, so every row written here passes the rules of ``gateway.publication.decidim_text``
(the same as direct publication's), the body apart from the component's length limit.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.models import Contribution
from gateway.publication import decidim_text
from gateway.publication.records import PublicRecord

LOCALE = "fr"  # the gateway's contributions are French; see docs/publishing-decidim-import.md
FIRST_VERSION = (0, 24)
TAXONOMIES_FROM = (0, 30)
FORMATS = ("csv", "json", "xlsx")
# Decidim's proposal states; the gateway's ``done`` (the measure was carried out) has no
# Decidim equivalent and is exported as ``accepted``.
ANSWER_STATES = {
    "evaluating": "evaluating",
    "accepted": "accepted",
    "rejected": "rejected",
    "done": "accepted",
}

_REFERENCE = re.compile(r"(?<![A-Z0-9])[A-Z0-9]{2,12}-\d{4,}(?![0-9])")


@dataclass(frozen=True)
class Refused:
    reference: str
    reasons: tuple[str, ...]


@dataclass
class ProposalFile:
    columns: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    already: list[tuple[str, str]] = field(default_factory=list)  # (reference, decidim id)


@dataclass(frozen=True)
class DecidimIds:
    """Decidim's own ids for a campaign's neighbourhoods and themes (an operator's YAML file):
    ``scopes: {Parc Nord: 12}``, ``categories: {Espaces verts: 3}``, ``taxonomies: {…}``."""

    scopes: Mapping[str, int] = field(default_factory=dict)
    categories: Mapping[str, int] = field(default_factory=dict)
    taxonomies: Mapping[str, int] = field(default_factory=dict)


def load_ids(path: Path) -> DecidimIds:
    """The operator's YAML file giving Decidim's ids for neighbourhoods and themes."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
    if not isinstance(data, dict) or set(data) - {"scopes", "categories", "taxonomies"}:
        raise ValueError(f"{path}: expected the keys scopes, categories and taxonomies only")
    parts: dict[str, dict[str, int]] = {}
    for key in ("scopes", "categories", "taxonomies"):
        table = data.get(key) or {}
        if not isinstance(table, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in table.values()
        ):
            raise ValueError(f"{path}: {key} must map names to Decidim ids (whole numbers)")
        parts[key] = {str(k): v for k, v in table.items()}
    return DecidimIds(**parts)


def parse_version(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*v?(\d+)\.(\d+)(?:\.\d+)*\s*", text)
    if match is None:
        raise ValueError(f"{text!r} is not a Decidim version (e.g. 0.27 or 0.30.1)")
    version = (int(match.group(1)), int(match.group(2)))
    if version < FIRST_VERSION:
        raise ValueError("Decidim versions before 0.24 are not supported")
    return version


def proposal_columns(version: tuple[int, int]) -> list[str]:
    grouping = "taxonomies/ids" if version >= TAXONOMIES_FROM else "category/id"
    return [
        f"title/{LOCALE}",
        f"body/{LOCALE}",
        "scope/id",
        grouping,
        "address",
        "latitude",
        "longitude",
    ]


def proposals(
    records: Iterable[PublicRecord],
    tz: ZoneInfo,
    version: tuple[int, int],
    mapping: DecidimIds | None = None,
) -> ProposalFile:
    """One valid row per published contribution not yet in Decidim; the others listed."""
    mapping = mapping or DecidimIds()
    result = ProposalFile(columns=proposal_columns(version))
    for record in records:
        if record.outcome != "published":
            continue  # only what moderators published goes to Decidim
        if record.decidim_id:
            result.already.append((record.reference, record.decidim_id))
            continue
        title = decidim_text.proposal_title(record, LOCALE)
        body = decidim_text.proposal_body(record, tz, LOCALE, max_length=None)
        reasons = decidim_text.validation_errors(title, body, body_max=None)
        if reasons:
            result.refused.append(Refused(record.reference, tuple(reasons)))
            continue
        row: dict[str, Any] = dict.fromkeys(result.columns)
        row[f"title/{LOCALE}"] = title
        row[f"body/{LOCALE}"] = body
        if record.neighbourhood:
            row["scope/id"] = mapping.scopes.get(record.neighbourhood)
        labels = [*record.themes, *([record.category] if record.category else [])]
        if version >= TAXONOMIES_FROM:
            ids = [mapping.taxonomies[t] for t in labels if t in mapping.taxonomies]
            row["taxonomies/ids"] = ",".join(str(i) for i in dict.fromkeys(ids)) or None
        else:
            ids = [mapping.categories[t] for t in labels if t in mapping.categories]
            row["category/id"] = ids[0] if ids else None  # a proposal has one category
        result.rows.append(row)
    return result


ANSWER_COLUMNS = ["id", "state", "status", f"answer/{LOCALE}", "answer/en"]


@dataclass
class AnswerFile:
    columns: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)
    without_id: list[str] = field(default_factory=list)  # references answered, not in Decidim


def answers(records: Iterable[PublicRecord]) -> AnswerFile:
    """The city's answers to contributions that have a Decidim proposal id."""
    result = AnswerFile(columns=list(ANSWER_COLUMNS))
    for record in records:
        if record.outcome != "published" or not record.answer_state:
            continue
        if not record.decidim_id:
            result.without_id.append(record.reference)
            continue
        state = ANSWER_STATES[record.answer_state]
        result.rows.append(
            {
                "id": int(record.decidim_id) if record.decidim_id.isdigit() else record.decidim_id,
                "state": state,
                "status": state,
                f"answer/{LOCALE}": _answer(record.answer_text),
                "answer/en": _answer(record.answer_text_en),
            }
        )
    return result


def _answer(text: str | None) -> str | None:
    if not text or not text.strip():
        return None
    return text.strip().lstrip(decidim_text.FORMULA_START + " ").strip() or None


# --- writing ----------------------------------------------------------------------------


def write(
    columns: Sequence[str], rows: Sequence[Mapping[str, Any]], fmt: str, stream: IO[bytes]
) -> None:
    """``rows`` as Decidim's importer reads them: ``csv`` (UTF-8 without BOM, ``;``), ``json``
    (an array of objects with the same keys, in the same order) or ``xlsx``."""
    if fmt == "csv":
        text = io.TextIOWrapper(stream, encoding="utf-8", newline="", write_through=True)
        writer = csv.writer(text, delimiter=";", lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else str(row[c]) for c in columns])
        text.flush()
        text.detach()  # the caller owns the stream
        return
    if fmt == "json":
        document = [{c: row.get(c) for c in columns} for row in rows]
        stream.write(json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8"))
        stream.write(b"\n")
        return
    if fmt == "xlsx":
        from openpyxl import Workbook

        book = Workbook(write_only=True)
        sheet = book.create_sheet("proposals")
        sheet.append(list(columns))
        for row in rows:
            sheet.append([_xlsx_cell(sheet, row.get(c)) for c in columns])
        buffer = io.BytesIO()
        book.save(buffer)
        stream.write(buffer.getvalue())
        return
    raise ValueError(f"unknown Decidim file format {fmt!r}")


def _xlsx_cell(sheet: Any, value: Any) -> Any:
    """A string is always a string cell: openpyxl would store ``=…`` as a formula, which
    Decidim's reader (RubyXL) sees as an empty cell and a spreadsheet would run. Characters
    XML cannot carry (NUL and the other controls, which a moderator's paste may bring) are
    dropped: openpyxl would refuse the whole file."""
    if not isinstance(value, str):
        return value
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    cell = WriteOnlyCell(sheet, value=ILLEGAL_CHARACTERS_RE.sub("", value))
    cell.data_type = "s"
    return cell


# --- reading Decidim's export back ------------------------------------------------------


@dataclass(frozen=True)
class ExportedProposal:
    decidim_id: str
    body: str  # every body column, joined


def read_export(path: Path) -> list[ExportedProposal]:
    """Decidim's admin proposals export (CSV ``;``, JSON or XLSX; or the zip Decidim emails)."""
    suffix = path.suffix.lower()
    if suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            names = [
                n
                for n in archive.namelist()
                if Path(n).suffix.lower() in (".csv", ".json", ".xlsx")
            ]
            if not names:
                raise ValueError(f"{path.name}: no CSV, JSON or XLSX file inside")
            return _read(Path(names[0]).suffix.lower(), archive.read(names[0]), path.name)
    if suffix not in (".csv", ".json", ".xlsx"):
        raise ValueError(f"{path.name}: expected a .csv, .json, .xlsx or .zip file")
    return _read(suffix, path.read_bytes(), path.name)


def _read(suffix: str, data: bytes, name: str) -> list[ExportedProposal]:
    rows: list[dict[str, Any]]
    if suffix == ".json":
        try:
            document = json.loads(data.decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{name}: not a JSON file ({exc})") from exc
        if not isinstance(document, list) or not all(isinstance(r, dict) for r in document):
            raise ValueError(f"{name}: expected a JSON array of proposals")
        rows = [_flatten(r) for r in document]
    elif suffix == ".csv":
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{name}: not UTF-8 text") from exc
        rows = list(csv.DictReader(io.StringIO(text, newline=""), delimiter=";"))
    else:
        rows = _read_xlsx(data, name)
    if rows and "id" not in rows[0]:
        raise ValueError(f"{name}: no 'id' column: is this Decidim's proposals export?")
    found = []
    for row in rows:
        ident = row.get("id")
        if ident is None or str(ident).strip() == "":
            continue
        ident = str(int(ident)) if isinstance(ident, float) and ident.is_integer() else ident
        body = "\n".join(
            str(v) for k, v in row.items() if (k == "body" or k.startswith("body/")) and v
        )
        found.append(ExportedProposal(str(ident).strip(), body))
    return found


def _read_xlsx(data: bytes, name: str) -> list[dict[str, Any]]:
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises several kinds for a file that is not XLSX
        raise ValueError(f"{name}: not an XLSX file ({exc})") from exc
    sheet = book.worksheets[0]
    lines = sheet.iter_rows(values_only=True)
    header = [str(h) if h is not None else "" for h in next(lines, ())]
    return [dict(zip(header, line, strict=False)) for line in lines]


def _flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested keys joined with ``/``, as Decidim flattens them for CSV."""
    flat: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, Mapping):
            flat.update(_flatten(item, f"{name}/"))
        else:
            flat[name] = item
    return flat


@dataclass
class IdsResult:
    matched: list[str] = field(default_factory=list)  # references given their id now
    already: list[str] = field(default_factory=list)  # same id already stored
    conflicting: list[tuple[str, str, str]] = field(default_factory=list)  # ref, stored, file
    unmatched: list[str] = field(default_factory=list)  # Decidim ids carrying no reference


def store_ids(session: Session, exported: Iterable[ExportedProposal]) -> IdsResult:
    """Store each proposal's Decidim id on the contribution whose reference its body ends
    with; a contribution that already has another id keeps it (reported)."""
    result = IdsResult()
    for proposal in exported:
        candidates = _REFERENCE.findall(proposal.body)
        known = (
            {
                c.reference: c
                for c in session.scalars(
                    select(Contribution).where(Contribution.reference.in_(set(candidates)))
                )
            }
            if candidates
            else {}
        )
        # The footer is last: when the text quotes another reference, the last one wins.
        reference = next((r for r in reversed(candidates) if r in known), None)
        if reference is None:
            result.unmatched.append(proposal.decidim_id)
            continue
        contribution = known[reference]
        if contribution.decidim_id == proposal.decidim_id:
            result.already.append(reference)
        elif contribution.decidim_id:
            result.conflicting.append((reference, contribution.decidim_id, proposal.decidim_id))
        else:
            contribution.decidim_id = proposal.decidim_id
            result.matched.append(reference)
    return result
