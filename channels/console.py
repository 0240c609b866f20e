"""The console outbox: where replies go when no provider is configured.

The outbound row is kept in the database like any sent message (provider ``console``), and the
text is logged without the recipient, so a local install shows its replies in the terminal and
``gateway simulate`` can print them.
"""

from __future__ import annotations

import itertools
import logging

from channels.base import OutgoingText

log = logging.getLogger("gateway.outbox")
_ids = itertools.count(1)


class ConsoleOutbox:
    name = "console"

    def send(self, message: OutgoingText) -> str:
        log.info("outbox [%s] %s", message.channel, message.text)
        return f"console-{next(_ids)}"
