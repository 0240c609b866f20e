"""PUT /api/v1/contributions/{id}/attachments/{number}/public: a moderator's script publishes a
photo after checking it, or withdraws it; what it may not do, and what a bad request gets."""

from __future__ import annotations

import pytest

from gateway.runtime import Runtime
from tests.api.client import Api, events, seed, stored, with_photo

PATH = "/contributions/{cid}/attachments/{n}/public"


async def test_a_photo_is_published_then_withdrawn_each_act_logged(api: Api, runtime: Runtime):
    cid = seed(runtime, "Le lavoir")
    with_photo(runtime, cid)
    detail = await api.get(f"/contributions/{cid}")
    assert detail.status == 200
    assert detail.body["attachments"] == [
        {
            "number": 1,
            "kind": "photo",
            "content_type": "image/png",
            "size": stored(runtime, cid).attachments[0]["size"],
            "publishable": True,
            "public": False,
        }
    ]

    reply = await api.put(PATH.format(cid=cid, n=1), {"public": True})
    assert reply.status == 200, reply.text
    assert reply.body["changed"] == [cid]
    assert (await api.get(f"/contributions/{cid}")).body["attachments"][0]["public"] is True
    (event,) = reply.body["events"]
    assert (event["action"], event["actor"]) == ("publish_photo", "api:dashboard")
    assert (event["before"], event["after"]) == ({"public_photo": None}, {"public_photo": 1})

    again = await api.put(PATH.format(cid=cid, n=1), {"public": True})
    assert again.status == 200 and again.body["changed"] == []  # a retried call: nothing new

    withdrawn = await api.put(PATH.format(cid=cid, n=1), {"public": False})
    assert withdrawn.status == 200
    assert [e.action for e in events(runtime)] == ["publish_photo", "unpublish_photo"]
    assert stored(runtime, cid).attachments[0]["public"] is False


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"public": "yes"}, 400),
        ({"public": 1}, 400),
        ({}, 400),
        ({"public": True, "photo": 2}, 400),
        (None, 400),
    ],
    ids=["string", "integer", "missing", "unknown-field", "no-body"],
)
async def test_a_malformed_request_is_refused_and_changes_nothing(
    api: Api, runtime: Runtime, body: object, status: int
):
    cid = seed(runtime, "Le lavoir")
    with_photo(runtime, cid)
    reply = await api.put(PATH.format(cid=cid, n=1), body)
    assert reply.status == status, reply.text
    assert "public" not in stored(runtime, cid).attachments[0]
    assert events(runtime) == []


async def test_what_is_not_a_photo_or_not_there_cannot_be_published(api: Api, runtime: Runtime):
    cid = seed(runtime, "Un plan")
    with_photo(runtime, cid)
    with runtime.sessions.begin() as session:
        from gateway.models import Contribution

        c = session.get(Contribution, cid)
        assert c is not None
        pdf = {"kind": "file", "path": "media/test/plan.pdf", "content_type": "application/pdf"}
        c.attachments = [*c.attachments, pdf]
    refused = await api.put(PATH.format(cid=cid, n=2), {"public": True})
    assert refused.status == 409 and refused.error == "console.errors.not_a_photo"
    assert (await api.put(PATH.format(cid=cid, n=3), {"public": True})).status == 404
    assert (await api.put(PATH.format(cid=424242, n=1), {"public": True})).status == 404
    assert (await api.put(PATH.format(cid=cid, n=0), {"public": True})).status == 404
    assert events(runtime) == []
