"""A day's stand from a spreadsheet: the template (CSV and XLSX), reading an upload, and filing
its rows through gateway.moderation.collected (the same checks as the form and the API).

Every row is checked first; the good ones are filed, each in its own transaction (one that
fails leaves the others filed), and each bad one is reported by its line number in the file
(the header is line 1) with the reason. Uploading the same file again files nothing twice:
each row is keyed by its content (and its rank among identical rows of the file), so that a
file whose bad rows were corrected and uploaded again files only those.

Cells are data, never formulas: a cell starting with ``=``, ``+``, ``-`` or ``@`` is kept as
the text it is (an XLSX formula's text, not its value; nothing is evaluated), and the template
written here holds strings only.

Caps: ``MAX_IMPORT_BYTES`` per file, ``MAX_ROWS`` rows, and an XLSX's unpacked size.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from openpyxl import Workbook, load_workbook
from openpyxl.utils.exceptions import InvalidFileException

from gateway import textnorm
from gateway.moderation.accounts import Actor
from gateway.moderation.collected import (
    Entry,
    Invalid,
    already_filed,
    check,
    client_key,
    error_key,
    file,
)
from gateway.runtime import Runtime

MAX_IMPORT_BYTES = 2 * 1024 * 1024
MAX_ROWS = 1000
MAX_UNPACKED_BYTES = 50 * 1024 * 1024  # an XLSX is a zip: refuse a bomb before reading it

# (Entry field, the French column name, the English alias), in the template's order.
COLUMNS = (
    ("campaign", "consultation", "campaign"),
    ("text", "texte", "text"),
    ("channel", "mode", "channel"),
    ("collected_on", "date", "date"),
    ("place", "lieu", "place"),
    ("neighbourhood", "quartier", "neighbourhood"),
    ("kind", "type", "kind"),
    ("group_description", "groupe", "group"),
    ("contact", "contact", "contact"),
)
REQUIRED = ("campaign", "text", "channel")
_HEADERS = {textnorm.fold(name): f for f, fr, en in COLUMNS for name in (fr, en)}
# What an agent may write in French in the mode and type columns.
CHANNEL_WORDS = {"rue": "street", "papier": "paper", "reunion": "meeting", "atelier": "meeting"}
KIND_WORDS = {"individuelle": "individual", "individuel": "individual", "collectif": "collective"}


@dataclass
class Problem:
    line: int  # 0: the file itself
    key: str
    params: dict[str, object] = field(default_factory=dict)


@dataclass
class Report:
    filed: list[tuple[int, str]] = field(default_factory=list)  # (line, reference)
    already: list[tuple[int, str]] = field(default_factory=list)  # filed by an earlier upload
    problems: list[Problem] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        """The file as a whole was refused (nothing was read from it)."""
        return any(p.line == 0 for p in self.problems)


class FileRefused(ValueError):
    def __init__(self, key: str, **params: object) -> None:
        super().__init__(key)
        self.key, self.params = key, params


# -- the template -----------------------------------------------------------------------------

EXAMPLE = {
    "campaign": "parc",
    "text": "Plus de bancs à l'ombre près de l'aire de jeux",
    "channel": "street",
    "collected_on": "",
    "place": "marché du Parc",
    "neighbourhood": "",
    "kind": "individual",
    "group_description": "",
    "contact": "",
}


def template_csv(today: date) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow([fr for _, fr, _ in COLUMNS])
    writer.writerow([{**EXAMPLE, "collected_on": today.isoformat()}[f] for f, _, _ in COLUMNS])
    # A BOM: Excel then opens the file as UTF-8 (accents intact).
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def template_xlsx(today: date) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "contributions"
    rows = [
        [fr for _, fr, _ in COLUMNS],
        [{**EXAMPLE, "collected_on": today.isoformat()}[f] for f, _, _ in COLUMNS],
    ]
    for r, values in enumerate(rows, start=1):
        for c, value in enumerate(values, start=1):
            cell = sheet.cell(row=r, column=c, value=value)
            cell.data_type = "s"  # text, even a value that starts with "=": never a formula
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# -- reading an upload ------------------------------------------------------------------------


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return (
            value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat()
        )
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _csv_rows(data: bytes) -> Iterable[tuple[int, list[str]]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")  # Excel's "CSV" on a French Windows
    if "\x00" in text:
        raise FileRefused(error_key("file_unreadable"))
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") >= first.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    line = 1
    try:
        for row in reader:
            yield line, row
            line = reader.line_num + 1
    except csv.Error as exc:
        raise FileRefused(error_key("file_unreadable")) from exc


def _xlsx_rows(data: bytes) -> Iterable[tuple[int, list[str]]]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if sum(info.file_size for info in archive.infolist()) > MAX_UNPACKED_BYTES:
                raise FileRefused(error_key("file_too_big"))
        # Not data_only: a formula cell gives its text ("=1+1"), which is kept as text.
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as exc:
        raise FileRefused(error_key("file_unreadable")) from exc
    try:
        sheet = book.worksheets[0]
        for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
            yield number, [_text(v) for v in row]
    finally:
        book.close()


def read_rows(data: bytes, name: str) -> list[tuple[int, dict[str, str]]]:
    """The upload's rows as (line, {Entry field: text}), blank rows left out; raises
    ``FileRefused`` for a file that cannot be read as a whole."""
    if len(data) > MAX_IMPORT_BYTES:
        raise FileRefused(error_key("file_too_big"), max=MAX_IMPORT_BYTES // 1024 // 1024)
    xlsx = data.startswith(b"PK\x03\x04")
    if not xlsx and name.lower().endswith((".xlsx", ".xls", ".ods")):
        raise FileRefused(error_key("file_type"))
    rows = iter(_xlsx_rows(data) if xlsx else _csv_rows(data))
    header = next(rows, None)
    if header is None:
        raise FileRefused(error_key("file_empty"))
    fields: list[str | None] = []
    for cell in header[1]:
        folded = textnorm.fold(cell.strip())
        if not folded:
            fields.append(None)
            continue
        if folded not in _HEADERS:
            raise FileRefused(error_key("column_unknown"), column=cell.strip()[:40])
        fields.append(_HEADERS[folded])
    missing = [f for f in REQUIRED if f not in fields]
    if missing:
        names = {f: fr for f, fr, _ in COLUMNS}
        raise FileRefused(error_key("column_missing"), column=names[missing[0]])
    found: list[tuple[int, dict[str, str]]] = []
    for line, cells in rows:
        values = {f: c.strip() for f, c in zip(fields, cells, strict=False) if f is not None}
        extra = cells[len(fields) :]
        if not any(values.values()) and not any(c.strip() for c in extra):
            continue
        if len(found) >= MAX_ROWS:
            raise FileRefused(error_key("too_many_rows"), max=MAX_ROWS)
        found.append((line, values))
    if not found:
        raise FileRefused(error_key("file_empty"))
    return found


def entry(values: dict[str, str]) -> Entry:
    channel = values.get("channel", "")
    kind = values.get("kind", "")
    return Entry(
        campaign=values.get("campaign", ""),
        text=values.get("text", ""),
        channel=CHANNEL_WORDS.get(textnorm.fold(channel), channel),
        collected_on=values.get("collected_on", ""),
        place=values.get("place", ""),
        neighbourhood=values.get("neighbourhood", ""),
        kind=KIND_WORDS.get(textnorm.fold(kind), kind) or "individual",
        group_description=values.get("group_description", ""),
        contact=values.get("contact", ""),
    )


def _row_keys(rows: list[tuple[int, dict[str, str]]]) -> list[str]:
    """Each row's key: its content, and its rank among identical rows (two residents may say
    the same thing at one stand; each is a contribution)."""
    seen: Counter[str] = Counter()
    keys = []
    for _, values in rows:
        content = "\x1f".join(values.get(f, "") for f, _, _ in COLUMNS)
        seen[content] += 1
        keys.append(client_key("sheet", f"{content}\x1e{seen[content]}"))
    return keys


def import_rows(runtime: Runtime, actor: Actor, data: bytes, name: str) -> Report:
    """Check every row of the upload, then file the good ones (see the module's doc)."""
    report = Report()
    try:
        rows = read_rows(data, name)
    except FileRefused as refused:
        report.problems.append(Problem(0, refused.key, dict(refused.params)))
        return report
    tz = ZoneInfo(runtime.settings.timezone)
    now = datetime.now(UTC)
    good = []
    with runtime.sessions() as session:
        for (line, values), key in zip(rows, _row_keys(rows), strict=True):
            try:
                checked = check(session, entry(values), tz=tz, now=now)
            except Invalid as invalid:
                for name_, code in invalid.errors.items():
                    report.problems.append(Problem(line, code, {"field": name_}))
                continue
            found = already_filed(session, key)
            if found is not None:
                report.already.append((line, found.reference))
                continue
            good.append((line, checked, key))
    for line, checked, key in good:
        filed = file(runtime, actor, checked, key=key)
        (report.filed if filed.created else report.already).append((line, filed.reference))
    return report
