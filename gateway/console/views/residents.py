"""A resident's own data, at their request made in person (admins only, checked by the console
middleware): opt out or erase a person named by their address, on every channel of that
address, as their own ``STOP`` and ``OUBLIER`` would (gateway.residents).

For the resident who comes to the town hall, writes a letter, or has only a landline and no
one to press the keys for them. The address typed here is used to find the person and is then
forgotten: it is not stored, logged, or shown back (the moderation log says who acted and
what was erased, counts only)."""

from __future__ import annotations

from aiohttp import web

from gateway import announcements, plugins, residents
from gateway.console import flash
from gateway.console.keys import VIEWER
from gateway.console.rendering import render, see_other
from gateway.console.views.common import field
from gateway.console.work import offload, read
from gateway.webkeys import RUNTIME

PATH = "/moderation/admin/residents"
# The address spaces an admin can name a person in: a phone number covers SMS and calls.
SPACES = plugins.address_spaces()
ACTIONS = ("opt_out", "forget")
MAX_ADDRESS = 320  # the longest email address RFC 5321 allows


async def _page(
    request: web.Request,
    *,
    status: int = 200,
    errors: list[flash.Flash] | None = None,
    space: str = "sms",
    action: str = "opt_out",
) -> web.Response:
    opted_in = await read(request, announcements.opted_in)  # a count, never an address
    return await render(
        request,
        "admin_residents.html",
        {
            "spaces": SPACES,
            "actions": ACTIONS,
            "space": space,
            "action": action,
            "opted_in": opted_in,
        },
        status=status,
        errors=errors,
        section="admin",
    )


async def residents_page(request: web.Request) -> web.StreamResponse:
    return await _page(request)


async def act_on_resident(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    space = field(form, "space")
    action = field(form, "action")
    address = " ".join(field(form, "address").split())
    confirmed = field(form, "confirm") == "1"
    if space not in SPACES or action not in ACTIONS:
        return await _page(
            request, status=400, errors=[flash.Flash("console.residents.bad_choice", error=True)]
        )
    if not address or len(address) > MAX_ADDRESS:
        return await _page(
            request,
            status=400,
            errors=[flash.Flash("console.residents.address_required", error=True)],
            space=space,
            action=action,
        )
    if action == "forget" and not confirmed:
        return await _page(
            request,
            status=400,
            errors=[flash.Flash("console.residents.confirm_required", error=True)],
            space=space,
            action=action,
        )
    runtime = request.app[RUNTIME]
    actor = request[VIEWER].actor.name
    response = see_other(PATH)
    if action == "forget":
        erased = await offload(
            lambda: residents.forget_address(runtime, space, address, actor=actor)
        )
        if erased.contributors or erased.messages or erased.calls:
            flash.add(
                request,
                response,
                "console.residents.forgotten",
                contributions=erased.contributions,
                messages=erased.messages,
                files=erased.files,
            )
        else:
            flash.add(request, response, "console.residents.unknown")
    else:
        await offload(lambda: residents.opt_out_address(runtime, space, address, actor=actor))
        flash.add(request, response, "console.residents.opted_out")
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get(PATH, residents_page)
    app.router.add_post(PATH, act_on_resident)
