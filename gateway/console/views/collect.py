"""Entering contributions collected by agents: one form, the spreadsheet templates and the
upload of a day's stand (gateway.moderation.collected and collected_import do the work; the
API's ``POST /api/v1/contributions`` goes through the same checks).

Agents (role ``agent``) see this page only (gateway.console.auth); moderators and admins may
use it too. A form carries a one-time key, so that a double click or a reload files once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.console import flash
from gateway.console.keys import VIEWER
from gateway.console.rendering import render, see_other, timezone
from gateway.console.views.common import FormData, field
from gateway.console.work import offload, read
from gateway.models import Campaign
from gateway.moderation import collected, collected_import
from gateway.moderation.actions import KINDS
from gateway.webkeys import RUNTIME, SETTINGS

PATH = "/moderation/collect"


def _campaigns(session: Session) -> list[dict[str, Any]]:
    found = session.scalars(
        select(Campaign).where(Campaign.status != "draft").order_by(Campaign.id)
    )
    return [
        {"slug": c.slug, "title": c.title, "neighbourhoods": list(c.neighbourhoods or [])}
        for c in found
    ]


async def collect_page(
    request: web.Request,
    *,
    status: int = 200,
    values: dict[str, str] | None = None,
    problems: dict[str, str] | None = None,
    report: collected_import.Report | None = None,
) -> web.Response:
    campaigns = await read(request, _campaigns)
    tz = timezone(request)
    given = dict(values or {})
    given.setdefault("collected_on", collected.today(tz))
    given.setdefault("channel", "street")
    given.setdefault("kind", "individual")
    errors = [flash.Flash(key, error=True) for key in (problems or {}).values()]
    return await render(
        request,
        "collect.html",
        {
            "campaigns": campaigns,
            "channels": collected.COLLECTED_CHANNELS,
            "kinds": KINDS,
            "values": given,
            "problems": problems or {},
            "form_key": collected.new_form_key(),
            "report": report,
            "max_text": collected.MAX_TEXT,
            "max_place": collected.MAX_PLACE,
        },
        status=status,
        section="collect",
        errors=errors,
    )


ENTRY_FIELDS = (
    "campaign",
    "text",
    "channel",
    "collected_on",
    "place",
    "neighbourhood",
    "kind",
    "group_description",
    "contact",
)


async def _scan(form: FormData) -> tuple[bytes, str, str] | None:
    upload = form.get("scan")
    if not isinstance(upload, web.FileField) or not upload.filename:
        return None
    data: bytes = await offload(lambda: upload.file.read(collected.MAX_SCAN_BYTES + 1))
    if not data:
        return None
    return data, str(upload.content_type or ""), str(upload.filename or "")


async def collect(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    values = {name: field(form, name) for name in ENTRY_FIELDS}
    runtime = request.app[RUNTIME]
    actor = request[VIEWER].actor
    form_key = field(form, "form_key")[:64]
    tz = timezone(request)
    scan = await _scan(form)
    data_path = request.app[SETTINGS].data_path

    key = collected.client_key(f"form:{actor.name}", form_key) if form_key else None

    def work() -> collected.Filed:
        with runtime.sessions() as session:
            checked = collected.check(
                session, collected.Entry(**values), tz=tz, now=datetime.now(UTC)
            )
            # A form sent twice: its scan is not stored again.
            first = collected.already_filed(session, key) if key else None
        if first is not None:
            return collected.Filed(first.id, first.reference, False, None)
        stored = collected.store_scan(data_path, *scan) if scan else None
        return collected.file(runtime, actor, checked, key=key, scan=stored)

    try:
        filed = await offload(work)
    except collected.Invalid as invalid:
        return await collect_page(request, status=422, values=values, problems=invalid.errors)
    response = see_other(f"{PATH}?filed={filed.reference}")
    if not filed.created:
        flash.add(request, response, "console.collect.already", reference=filed.reference)
    elif filed.receipt is None:
        flash.add(request, response, "console.collect.filed_no_contact", reference=filed.reference)
    elif filed.receipt == "queued":
        flash.add(request, response, "console.collect.filed_receipt", reference=filed.reference)
    else:
        flash.add(request, response, "console.collect.filed", reference=filed.reference)
    return response


async def import_sheet(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    upload = form.get("sheet")
    actor = request[VIEWER].actor
    runtime = request.app[RUNTIME]
    if not isinstance(upload, web.FileField):
        data, name = b"", ""
    else:
        data = await offload(lambda: upload.file.read(collected_import.MAX_IMPORT_BYTES + 1))
        name = str(upload.filename or "")
    report = await offload(lambda: collected_import.import_rows(runtime, actor, data, name))
    return await collect_page(request, status=200 if not report.refused else 422, report=report)


async def template(request: web.Request) -> web.StreamResponse:
    kind = request.match_info["kind"]
    today = datetime.now(UTC).astimezone(timezone(request)).date()
    if kind == "csv":
        body = collected_import.template_csv(today)
        content_type = "text/csv; charset=utf-8"
    else:
        body = collected_import.template_xlsx(today)
        content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return web.Response(
        body=body,
        headers={
            "Content-Type": content_type,
            "Content-Disposition": f'attachment; filename="contributions-recueillies.{kind}"',
            "Cache-Control": "no-store",
        },
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get(PATH, collect_page)
    app.router.add_post(PATH, collect)
    app.router.add_post(PATH + "/import", import_sheet)
    app.router.add_get(PATH + "/template.{kind:csv|xlsx}", template)
