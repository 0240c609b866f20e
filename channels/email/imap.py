"""Reading the campaign's mailbox over IMAP: every message once, never deleted.

A pass searches the mailbox for messages without the gateway's keyword (``UID SEARCH UNKEYWORD
$AgoraStored``), fetches each one without marking it read (``BODY.PEEK[]``), stores it through
the same path as the SMTP receiver (channels.email.inbound.accept), and only then flags it
``$AgoraStored`` (and ``\\Seen``). If storing fails (the database is down) the pass stops and
the message stays unflagged: the next pass reads it again, and the unique key on its
Message-ID absorbs a second reading. Nothing is ever deleted or moved: the mailbox stays the
city's archive. The keyword, not a remembered UID, is the mark: it survives a UIDVALIDITY
change, a restart, and several gateways reading one mailbox.

Between passes the poller waits in IDLE (RFC 2177) when the server offers it, so new mail is
read within a second or two; otherwise it polls every ``IMAP_POLL_SECONDS``. A message over
``EMAIL_MAX_BYTES`` is not downloaded: its headers are, so that the resident is answered.
"""

from __future__ import annotations

import imaplib
import logging
import re
import select
import socket
import ssl
import threading
import time
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from channels.email.inbound import accept
from channels.email.settings import EmailSettings, of

log = logging.getLogger(__name__)

KEYWORD = "$AgoraStored"
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")


class MailboxError(Exception):
    pass


def connect(settings: EmailSettings, timeout: float = 30) -> imaplib.IMAP4:
    """Log in and select the mailbox, with the security the settings ask for."""
    host, port, security = settings.imap_host, settings.imap_port, settings.imap_security
    context = ssl.create_default_context()
    try:
        if security == "tls":
            conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                host, port, ssl_context=context, timeout=timeout
            )
        else:
            conn = imaplib.IMAP4(host, port, timeout=timeout)
            if security == "starttls":
                conn.starttls(ssl_context=context)
            elif security != "none":
                raise MailboxError(f"IMAP_SECURITY must be tls, starttls or none, not {security!r}")
        conn.login(settings.imap_user, settings.imap_password)
        status, _ = conn.select(_quote(settings.imap_mailbox))
        if status != "OK":
            raise MailboxError(f"mailbox {settings.imap_mailbox!r} cannot be selected")
    except (imaplib.IMAP4.error, OSError) as exc:
        raise MailboxError(f"IMAP {host}:{port}: {type(exc).__name__}: {exc}") from exc
    return conn


def _quote(mailbox: str) -> str:
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'


def poll_once(runtime: Any, conn: imaplib.IMAP4) -> int:
    """One pass over the unflagged messages; returns how many were handled."""
    status, data = conn.uid("SEARCH", "UNKEYWORD", KEYWORD)
    if status != "OK":
        raise MailboxError(f"SEARCH failed: {data!r}")
    uids = [int(u) for u in (data[0] or b"").split()]
    handled = 0
    for uid in uids:
        raw, too_large = _fetch(runtime, conn, uid)
        if raw is None:
            continue
        try:
            # A message that cannot be stored as one is quarantined by accept and flagged like
            # the others: only the database being down stops the pass.
            result = accept(runtime, raw, too_large=too_large)
        except SQLAlchemyError as exc:
            # Not stored: leave it unflagged for the next pass.
            log.error("imap: message %d not stored (%s); pass stopped", uid, type(exc).__name__)
            break
        conn.uid("STORE", str(uid), "+FLAGS.SILENT", f"({KEYWORD} \\Seen)")
        log.info("imap: message %d %s %s", uid, result.outcome, result.reason)
        handled += 1
    return handled


def _fetch(runtime: Any, conn: imaplib.IMAP4, uid: int) -> tuple[bytes | None, bool]:
    status, data = conn.uid("FETCH", str(uid), "(RFC822.SIZE)")
    match = _SIZE.search(b" ".join(p if isinstance(p, bytes) else b"" for p in data or []))
    size = int(match.group(1)) if match else 0
    too_large = size > of(runtime.settings).email_max_bytes
    part = "BODY.PEEK[HEADER]" if too_large else "BODY.PEEK[]"
    status, data = conn.uid("FETCH", str(uid), f"({part})")
    if status != "OK":
        log.warning("imap: message %d could not be fetched", uid)
        return None, False
    for item in data or []:
        if isinstance(item, tuple) and len(item) == 2:
            if too_large:
                log.warning("imap: message %d of %d bytes over the cap: headers only", uid, size)
            return item[1], too_large
    return None, False


class _Lines:
    """Lines read straight from the connection's socket, with a timeout: imaplib's buffered
    file cannot be waited on. Used only inside IDLE, where imaplib sends and reads nothing."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def readline(self, timeout: float) -> bytes | None:
        deadline = time.monotonic() + timeout
        while b"\r\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            pending = self.sock.pending() if isinstance(self.sock, ssl.SSLSocket) else 0
            if not pending:
                ready, _, _ = select.select([self.sock], [], [], min(remaining, 1.0))
                if not ready:
                    continue
            chunk = self.sock.recv(65536)
            if not chunk:
                raise MailboxError("connection closed during IDLE")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line


def idle(conn: imaplib.IMAP4, seconds: float, stop: threading.Event | None = None) -> bool:
    """Wait in IDLE until the server reports new mail or ``seconds`` pass; True on new mail.
    (imaplib has no IDLE before Python 3.14: the exchange is done on its socket.)"""
    tag: bytes = conn._new_tag()
    lines = _Lines(conn.socket())
    conn.send(tag + b" IDLE\r\n")
    first = lines.readline(30)
    if first is None or not first.startswith(b"+"):
        raise MailboxError(f"IDLE refused: {first!r}")
    news = False
    deadline = time.monotonic() + seconds
    while not news and time.monotonic() < deadline and not (stop and stop.is_set()):
        line = lines.readline(min(1.0, max(deadline - time.monotonic(), 0.01)))
        news = line is not None and (b"EXISTS" in line or b"RECENT" in line)
    conn.send(b"DONE\r\n")
    while True:  # up to IDLE's tagged completion; untagged lines before it are dropped
        line = lines.readline(30)
        if line is None:
            raise MailboxError("no answer to DONE")
        if line.startswith(tag + b" "):
            if not line.startswith(tag + b" OK"):
                raise MailboxError(f"IDLE ended badly: {line!r}")
            return news


def run(runtime: Any, *, once: bool = False, stop: threading.Event | None = None) -> int:
    """Read the mailbox until stopped (or one pass with ``once``); returns messages handled.
    Connection failures are retried with a growing pause, never fatal."""
    settings = of(runtime.settings)
    handled, pause = 0, 2.0
    while not (stop and stop.is_set()):
        try:
            conn = connect(settings)
        except MailboxError as exc:
            if once:
                raise
            log.warning("imap: %s; retrying in %.0f s", exc, pause)
            _sleep(pause, stop)
            pause = min(pause * 2, 300)
            continue
        pause = 2.0
        try:
            can_idle = b"IDLE" in b" ".join(
                c if isinstance(c, bytes) else str(c).encode() for c in conn.capabilities
            )
            while not (stop and stop.is_set()):
                handled += poll_once(runtime, conn)
                if once:
                    return handled
                if can_idle:
                    idle(conn, settings.imap_idle_seconds, stop)
                else:
                    _sleep(settings.imap_poll_seconds, stop)
                    conn.noop()
        except (TimeoutError, MailboxError, imaplib.IMAP4.error, OSError) as exc:
            if once:
                raise MailboxError(str(exc)) from exc
            log.warning("imap: connection lost (%s); reconnecting", type(exc).__name__)
        finally:
            try:
                conn.logout()
            except (imaplib.IMAP4.error, OSError) as exc:  # already closed
                log.debug("imap: logout failed (%s)", type(exc).__name__)
    return handled


def _sleep(seconds: float, stop: threading.Event | None) -> None:
    if stop is not None:
        stop.wait(seconds)
    else:
        time.sleep(seconds)
