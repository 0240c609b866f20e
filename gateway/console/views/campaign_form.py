"""Creating and editing a campaign in the console (admins only, checked by the console
middleware), and downloading every campaign as campaign files.

The form is a table (``FIELDS``): each row names a campaign file key, how its input reads
and writes it, and its label (``console.campaign_form.<name>``). The posted form is turned
into a campaign file's mapping and saved by gateway.moderation.campaigns.save_campaign, the
API's path: the same rules, the same admin events. A new campaign file key is one row here
(and its label in the catalogues).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from multidict import MultiDictProxy
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import campaigns, greetings
from gateway.console import flash
from gateway.console.keys import VIEWER
from gateway.console.rendering import error_page, render, see_other
from gateway.console.views.common import field
from gateway.console.work import act, offload, read
from gateway.i18n import languages
from gateway.models import Campaign
from gateway.moderation import campaigns as campaign_admin
from gateway.moderation.actions import ActionError
from gateway.webkeys import RUNTIME

log = logging.getLogger(__name__)

CAMPAIGNS = "/moderation/admin/campaigns"
NEW = CAMPAIGNS + "/new"
EXPORT = CAMPAIGNS + "/export.yaml"


@dataclass(frozen=True)
class FormField:
    name: str  # the input's name and its label's key
    key: str  # the campaign file key, dotted when nested ("voice.greeting")
    # text | textarea | words (keywords: commas or spaces) | lines (one per line) | select
    # | checkbox | number
    kind: str = "text"
    options: tuple[str, ...] = ()  # select: the values, labelled console.campaign_form.<name>_<v>
    default: str = ""


FIELDS: tuple[FormField, ...] = (
    FormField("slug", "slug"),
    FormField("title", "title"),
    FormField("question", "question", "textarea"),
    FormField("keywords", "keywords", "words"),
    FormField("status", "status", "select", campaigns.STATUSES, "draft"),
    FormField("closes_at", "closes_at"),
    FormField("phone_numbers", "phone_numbers", "lines"),
    FormField("neighbourhoods", "neighbourhoods", "lines"),
    FormField("themes", "themes", "lines"),
    FormField("reference_prefix", "reference_prefix"),
    FormField("language", "language", "select", languages(), "fr"),
    FormField("voice_greeting", "voice.greeting", "textarea"),
    FormField("voice_audio", "voice.audio"),
    FormField("voice_sms_receipt", "voice.sms_receipt", "checkbox", default="1"),
    FormField("rejected_text", "publication.rejected_text", "select", ("shown", "hidden"), "shown"),
    FormField("moderation", "moderation", "select", campaigns.MODERATION_MODES, "a_priori"),
    FormField("decidim_component", "decidim.component", "number"),
)


def form_to_file(form: MultiDictProxy[Any]) -> dict[str, Any]:
    """The posted form as a campaign file's mapping (empty inputs left out: their default)."""
    data: dict[str, Any] = {}
    for f in FIELDS:
        raw = field(form, f.name).strip()
        value: Any
        if f.kind == "checkbox":
            value = raw == "1"
        elif not raw:
            continue
        elif f.kind == "words":
            value = [w for w in re.split(r"[\s,;]+", raw) if w]
        elif f.kind == "lines":
            value = [line.strip() for line in raw.splitlines() if line.strip()]
        elif f.kind == "number":
            value = int(raw) if raw.isdigit() else raw
        else:
            value = raw
        *parents, leaf = f.key.split(".")
        target = data
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return data


def _closes_at_for_form(value: str, timezone: str) -> str:
    """The end date as an admin typed it: a date when it is a local midnight (the day before:
    open through that day), else the local date and time."""
    local = datetime.fromisoformat(value).astimezone(ZoneInfo(timezone))
    if (local.hour, local.minute, local.second) == (0, 0, 0):
        return (local - timedelta(days=1)).date().isoformat()
    return local.strftime("%Y-%m-%dT%H:%M")


def file_to_form(data: dict[str, Any], timezone: str) -> dict[str, str]:
    """A campaign file's mapping as the form's values."""
    values: dict[str, str] = {}
    for f in FIELDS:
        value: Any = data
        for part in f.key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            values[f.name] = "" if f.kind != "checkbox" else f.default
        elif f.kind == "checkbox":
            values[f.name] = "1" if value else ""
        elif f.kind == "words":
            values[f.name] = ", ".join(value)
        elif f.kind == "lines":
            values[f.name] = "\n".join(value)
        elif f.name == "closes_at":
            values[f.name] = _closes_at_for_form(str(value), timezone)
        else:
            values[f.name] = str(value)
    return values


def _blank() -> dict[str, str]:
    return {f.name: f.default for f in FIELDS}


async def _form_page(
    request: web.Request,
    values: dict[str, str],
    *,
    slug: str | None,
    status: int = 200,
    errors: list[flash.Flash] | None = None,
    error_field: str | None = None,
) -> web.Response:
    return await render(
        request,
        "admin_campaign_form.html",
        {
            "fields": FIELDS,
            "values": values,
            "slug": slug,
            "action": f"{CAMPAIGNS}/{slug}" if slug else CAMPAIGNS,
            "error_field": error_field,
            "max_mb": greetings.MAX_BYTES // (1024 * 1024),
            "max_seconds": greetings.MAX_SECONDS,
        },
        status=status,
        errors=errors,
        section="admin",
    )


async def new_campaign(request: web.Request) -> web.StreamResponse:
    return await _form_page(request, _blank(), slug=None)


async def edit_campaign(request: web.Request) -> web.StreamResponse:
    slug = request.match_info["slug"][:64]
    timezone = request.app[RUNTIME].settings.timezone

    def load(session: Session) -> dict[str, Any] | None:
        found = session.scalar(select(Campaign).where(Campaign.slug == slug))
        return campaigns.file_data(found, timezone) if found else None

    data = await read(request, load)
    if data is None:
        return await error_page(request, 404, "console.errors.not_found")
    return await _form_page(request, file_to_form(data, timezone), slug=slug)


async def _save(request: web.Request, slug: str | None) -> web.StreamResponse:
    form = await request.post()
    data = form_to_file(form)
    values = {f.name: field(form, f.name) for f in FIELDS}
    try:
        await act(
            request,
            lambda rt, actor: campaign_admin.save_campaign(
                rt, actor, data, slug=slug, source="console"
            ),
        )
    except campaigns.CampaignFileError as error:
        names = {f.key: f.name for f in FIELDS}
        return await _form_page(
            request,
            values,
            slug=slug,
            status=409 if error.code == "exists" else 422,
            errors=[flash.Flash(f"console.campaign_errors.{error.code}", dict(error.params), True)],
            error_field=names.get(error.field or "", error.field),
        )
    except ActionError as error:
        if error.status == 404:
            return await error_page(request, 404, error.key)
        raise
    response = see_other(CAMPAIGNS)
    saved = str(data.get("slug") or slug)
    key = "console.flash.campaign_saved" if slug else "console.flash.campaign_created"
    flash.add(request, response, key, slug=saved)
    return response


async def create_campaign(request: web.Request) -> web.StreamResponse:
    return await _save(request, None)


async def save_campaign(request: web.Request) -> web.StreamResponse:
    return await _save(request, request.match_info["slug"][:64])


async def export_campaigns(request: web.Request) -> web.StreamResponse:
    """Every campaign as one YAML stream that `gateway campaigns load` reads back."""
    timezone = request.app[RUNTIME].settings.timezone
    text = await read(
        request, lambda session: campaigns.dump_all(campaigns.all_campaigns(session), timezone)
    )
    return web.Response(
        text=text,
        content_type="application/yaml",
        charset="utf-8",
        headers={"Content-Disposition": 'attachment; filename="campaigns.yaml"'},
    )


async def upload_greeting(request: web.Request) -> web.StreamResponse:
    """An audio file for the answering machine's greeting: decoded to check it, kept, and
    played to callers instead of the text (gateway.greetings)."""
    slug = request.match_info["slug"][:64]
    settings = request.app[RUNTIME].settings
    upload = (await request.post()).get("greeting")
    data = upload.file.read(greetings.MAX_BYTES + 1) if isinstance(upload, web.FileField) else b""
    try:
        if not data:
            raise greetings.GreetingError("missing", "no file")
        fmt = await offload(lambda: greetings.check(data))
    except greetings.GreetingError as error:
        log.info("console: greeting for %s refused (%s)", slug, error)
        response = see_other(f"{CAMPAIGNS}/{slug}/edit")
        flash.add(request, response, f"console.greeting.{error.key}", error=True)
        return response
    runtime, actor = request.app[RUNTIME], request[VIEWER].actor
    url = await offload(lambda: greetings.store(settings, data, fmt))
    try:
        old = await offload(lambda: campaign_admin.set_greeting_audio(runtime, actor, slug, url))
    except ActionError as error:
        greetings.remove(settings, url)
        return await error_page(request, error.status, error.key)
    greetings.remove(settings, old)
    response = see_other(f"{CAMPAIGNS}/{slug}/edit")
    flash.add(request, response, "console.greeting.saved")
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get(NEW, new_campaign)
    app.router.add_get(EXPORT, export_campaigns)
    app.router.add_post(CAMPAIGNS, create_campaign)
    app.router.add_get(CAMPAIGNS + "/{slug}/edit", edit_campaign)
    app.router.add_post(CAMPAIGNS + "/{slug}", save_campaign)
    app.router.add_post(CAMPAIGNS + "/{slug}/greeting", upload_greeting)
