"""Every email of the corpus (channels/email/tests/corpus, with expected.json), through both
inbound paths: the expected message stored once with its attachments and an answer threaded to
it, or silence for what must never be answered. Delivered twice, it is still stored once."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from channels.email import imap
from channels.email.tests.conftest import CORPUS
from channels.email.tests.servers import DovecotServer, SmtpSink
from gateway.runtime import Runtime
from tests.helpers import drain, inbound

EXPECTED: dict[str, dict[str, Any]] = json.loads((CORPUS / "expected.json").read_text())


@pytest.mark.parametrize("path", ["imap", "smtp"])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_email(
    name: str,
    path: str,
    request: pytest.FixtureRequest,
    mail_runtime: Runtime,
    sink: SmtpSink,
) -> None:
    expected = EXPECTED[name]
    raw = (CORPUS / name).read_bytes()
    uids: list[int] = []

    def deliver() -> None:
        if path == "imap":
            mailbox: DovecotServer = request.getfixturevalue("mailbox")
            uids.append(mailbox.append(raw))
            imap.run(mail_runtime, once=True)
        else:
            request.getfixturevalue("receiver").send(raw)

    deliver()
    deliver()  # a second delivery (a retry, or the same mail read again)
    drain(mail_runtime)
    stored = inbound(mail_runtime)

    if path == "imap":  # read, flagged, never deleted, whatever became of it
        mailbox = request.getfixturevalue("mailbox")
        assert all(imap.KEYWORD in mailbox.flags(uid) for uid in uids)
        assert mailbox.count() == 2

    if expected["automatic"]:
        assert stored == []
        time.sleep(0.2)
        assert sink.messages == [], f"{name} was answered"
        return

    (message,) = stored
    if expected["message_id"] == "sha256":
        assert message.provider_message_id.startswith("sha256:")
    else:
        assert message.provider_message_id == expected["message_id"]
    if "text" in expected:
        assert message.text == expected["text"]
    for fragment in expected.get("text_contains", []):
        assert fragment in message.text
    kept = [a for a in message.attachments if a.get("path")]
    refused = [a for a in message.attachments if a.get("kind") == "refused"]
    assert len(kept) == len(expected["attachments"])
    assert len(refused) == expected["refused_count"]
    for item in kept:
        assert (mail_runtime.settings.data_path / item["path"]).is_file()

    answers = sink.wait_for(1)
    assert {a["rcpt_tos"][0] for a in answers} == {expected["sender"]}
    if expected["message_id"] != "sha256":
        first = answers[0]["message"]
        assert first["In-Reply-To"].strip() == f"<{expected['message_id']}>"
