"""No personal data leaves through the API: never a resident's number, in any response."""

from __future__ import annotations

from gateway.models import Contributor
from gateway.runtime import Runtime
from tests.api.client import Api, sms
from tests.helpers import drain, send_sms

SENDER = "+33698765432"
# The number as a client might search for it in a response.
FORMS = (SENDER, SENDER[1:], "0698765432", "698765432", "06 98 76 54 32", "06.98.76.54.32")


async def test_the_senders_number_appears_in_no_response(
    api: Api, admin_api: Api, runtime: Runtime
):
    contribution = sms(runtime, "Il faut plus de bancs près du kiosque", SENDER)
    send_sms(runtime, "centre", SENDER)  # the neighbourhood the engine asks for
    tract = sms(runtime, "Non au parking sous le parc", SENDER)
    with runtime.sessions() as session:
        contributor = session.get(Contributor, contribution.contributor_id)
        assert contributor is not None and contributor.address_hash
        address_hash, public_id = contributor.address_hash, contributor.public_id
    cid = contribution.id

    await api.post(f"/contributions/{cid}/replies", {"text": "Merci, lequel ?"})
    await api.post(f"/contributions/{cid}/classification", {"tags": ["bancs"]})
    await api.post(f"/contributions/{cid}/decision", {"action": "publish"})
    await api.post("/decisions", {"ids": [tract.id], "action": "reject", "reason": "Doublon"})
    await api.post(f"/contributions/{tract.id}/decision", {"action": "reopen"})
    await api.post(f"/groups/{tract.group_id}/decision", {"action": "spam"})
    drain(runtime)  # the notices are sent: their rows now carry delivery details
    for path in (
        "/contributions?status=all",
        "/contributions?status=all&grouped=1",
        f"/contributions/{cid}",
        f"/contributions/{tract.id}",
        f"/groups/{tract.group_id}",
        "/events",
        f"/events?contribution={cid}",
        "/campaigns",
        "/campaigns/parc/stats",
        "/openapi.json",
    ):
        assert (await api.get(path)).status == 200, path
    await admin_api.put("/campaigns/parc/status", {"status": "closed"})

    bodies = [*api.bodies, *admin_api.bodies]
    assert len(bodies) == 17
    detail = next(b for b in bodies if '"notices"' in b and "kiosque" in b)
    assert public_id in detail  # the pseudonymous id is shown
    assert "Merci, lequel ?" in detail  # what the API shows is really there
    for body in bodies:
        for form in FORMS:
            assert form not in body
        assert address_hash not in body
