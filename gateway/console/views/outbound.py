"""Messages that could not be delivered (admins only, checked by the console middleware): the
dead-letter list, with a retry and a discard button per message (gateway.moderation.deadletter).

No address is shown: the channel, the provider, the contributor's pseudonymous id, the
contribution's reference, the text, the reason, the attempts and the dates."""

from __future__ import annotations

from aiohttp import web

from gateway.console import flash
from gateway.console.keys import VIEWER
from gateway.console.rendering import render, see_other
from gateway.console.views.common import parse_id, refused
from gateway.console.work import offload, read
from gateway.moderation import deadletter
from gateway.moderation.actions import ActionError
from gateway.webkeys import RUNTIME

PATH = "/moderation/admin/outbound"


async def failed_page(request: web.Request) -> web.StreamResponse:
    return await _page(request)


async def _page(
    request: web.Request, *, status: int = 200, errors: list[flash.Flash] | None = None
) -> web.Response:
    messages = await read(request, deadletter.failed_messages)
    count = await read(request, deadletter.failed_count)
    return await render(
        request,
        "admin_outbound.html",
        {"messages": messages, "count": count},
        status=status,
        errors=errors,
        section="admin",
    )


async def retry(request: web.Request) -> web.StreamResponse:
    outbound_id = parse_id(request, "id")
    runtime, actor = request.app[RUNTIME], request[VIEWER].actor
    try:
        outcome = await offload(lambda: deadletter.retry(runtime, outbound_id, actor))
    except ActionError as error:
        return await _page(request, status=error.status, errors=[refused(error)])
    response = see_other(PATH)
    key = "console.outbound.retried" if outcome.changed else "console.outbound.already"
    flash.add(request, response, key, id=outbound_id)
    return response


async def discard(request: web.Request) -> web.StreamResponse:
    outbound_id = parse_id(request, "id")
    runtime, actor = request.app[RUNTIME], request[VIEWER].actor
    try:
        outcome = await offload(lambda: deadletter.discard(runtime, outbound_id, actor))
    except ActionError as error:
        return await _page(request, status=error.status, errors=[refused(error)])
    response = see_other(PATH)
    key = "console.outbound.discarded" if outcome.changed else "console.outbound.already_discarded"
    flash.add(request, response, key, id=outbound_id)
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get(PATH, failed_page)
    app.router.add_post(PATH + "/{id:[0-9]+}/retry", retry)
    app.router.add_post(PATH + "/{id:[0-9]+}/discard", discard)
