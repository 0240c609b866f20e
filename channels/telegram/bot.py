"""Talking to the Bot API with python-telegram-bot: sending replies, fetching media.

``TELEGRAM_API_BASE`` (default https://api.telegram.org) is the one place requests go: the
library's ``base_url`` and ``base_file_url`` are built from it (``/bot<token>/<method>``,
``/file/bot<token>/<path>``), so tests point it at a local fake Bot API server, and media are
downloaded from that host only. The token is part of every URL: it never reaches a log
(gateway.privacy.redact masks it; httpx's request log is silenced in gateway.logs).

The library is asynchronous; the worker's jobs are not. A ``TelegramSender`` keeps its own event
loop and one initialised ``Bot`` (``initialize`` calls ``getMe``, which also checks the token).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import (
    BadRequest,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import HTTPXRequest

from channels.telegram.updates import FILE_ID
from gateway import downloads, files
from gateway.messages import OutgoingText, SendError
from gateway.privacy import redact

# PTB 22.2 deprecates integer time periods (RetryAfter.retry_after becomes a timedelta in its
# next major version) and warns on every RetryAfter it builds. Opt in to the coming behaviour
# now, as PTB documents, unless the operator chose otherwise; retry_seconds reads both types.
os.environ.setdefault("PTB_TIMEDELTA", "true")

log = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://api.telegram.org"
FILE_TYPES = ("audio/", "image/", "video/", "application/")
# The file_path getFile returns goes into the download URL: relative segments of safe
# characters ("voice/file_12.oga"), none empty or starting with a dot, so neither "..", an
# absolute path, a query nor another host can be smuggled in.
FILE_PATH = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_-][A-Za-z0-9_.-]*)*")
MAX_FILE_PATH = 512


def make_bot(token: str, api_base: str = DEFAULT_API_BASE, timeout: float = 15) -> Bot:
    base = api_base.rstrip("/")
    request = HTTPXRequest(connect_timeout=timeout, read_timeout=timeout, write_timeout=timeout)
    return Bot(
        token,
        base_url=f"{base}/bot",
        base_file_url=f"{base}/file/bot",
        request=request,
        get_updates_request=HTTPXRequest(
            connect_timeout=timeout, read_timeout=timeout + 60, write_timeout=timeout
        ),
    )


def retry_seconds(value: int | float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def retry_after(exc: RetryAfter) -> float:
    """The wait Telegram asks for, in seconds (a timedelta with PTB_TIMEDELTA, else an int)."""
    return retry_seconds(exc.retry_after)


async def raw_call(bot: Bot, method: str, params: dict[str, Any], **timeouts: Any) -> Any:
    """A Bot API call whose raw JSON result is wanted (an update as Telegram sent it, a file's
    relative path), without the library's advice to use its typed method."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return await bot.do_api_request(method, api_kwargs=params, **timeouts)


def markup(buttons: list[list[dict[str, str]]] | None) -> InlineKeyboardMarkup | None:
    if not buttons:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(b["text"], callback_data=b["data"]) for b in row] for row in buttons]
    )


def classify(exc: TelegramError) -> SendError:
    """A Bot API error, as the outbound job needs it: retry or not, opted out or not."""
    text = redact(f"Telegram: {exc}")
    if isinstance(exc, RetryAfter):
        return SendError(
            f"Telegram 429: {exc}", retryable=True, code=429, retry_after=retry_after(exc)
        )
    if isinstance(exc, Forbidden):
        text = redact(f"Telegram 403: {exc}")
        # "bot was blocked by the user", "user is deactivated": this resident cannot be reached
        # and did not want to be; the contributor is marked opted out.
        return SendError(text, retryable=False, code=403, recipient_opted_out=True)
    if isinstance(exc, TimedOut):
        # Telegram may have delivered it: sending again could send it twice.
        return SendError(text, retryable=False)
    if isinstance(exc, (BadRequest, InvalidToken)):
        return SendError(text, retryable=False, code=400)
    if isinstance(exc, NetworkError):  # connection refused, 5xx: it did not reach Telegram
        return SendError(text, retryable=True)
    return SendError(text, retryable=False)


class _Loop:
    """One event loop and one initialised Bot for synchronous callers."""

    def __init__(self, token: str, api_base: str, timeout: float) -> None:
        self._loop = asyncio.new_event_loop()
        self.bot = make_bot(token, api_base, timeout)
        self._ready = False

    def run(self, coro: Any) -> Any:
        if not self._ready:
            self._loop.run_until_complete(self.bot.initialize())
            self._ready = True
        return self._loop.run_until_complete(coro)

    def close(self) -> None:
        if self._ready:
            # In a thread of its own: the caller's thread may be running an event loop.
            closer = threading.Thread(
                target=self._loop.run_until_complete, args=(self.bot.shutdown(),)
            )
            closer.start()
            closer.join(10)
            self._ready = False
        if not self._loop.is_running():
            self._loop.close()


class TelegramSender:
    """Sends replies with sendMessage; the answer buttons become an inline keyboard."""

    name = "telegram"

    def __init__(self, token: str, api_base: str = DEFAULT_API_BASE, timeout: float = 15) -> None:
        self._client = _Loop(token, api_base, timeout)

    def send(self, message: OutgoingText) -> str:
        try:
            chat_id = int(message.recipient)
        except ValueError as exc:
            raise SendError("not a Telegram chat id", retryable=False) from exc
        try:
            sent = self._client.run(
                self._client.bot.send_message(
                    chat_id=chat_id, text=message.text, reply_markup=markup(message.buttons)
                )
            )
        except TelegramError as exc:
            raise classify(exc) from exc
        return str(sent.message_id)

    def close(self) -> None:
        self._client.close()


class MediaError(Exception):
    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class MediaFetcher:
    """getFile, then the download from the Bot API's file host, streamed under a size cap."""

    def __init__(
        self, token: str, api_base: str = DEFAULT_API_BASE, max_bytes: int = 20 * 1024 * 1024
    ) -> None:
        self._token = token
        self._base = api_base.rstrip("/")
        self._max = max_bytes
        self._client = _Loop(token, api_base, 30)
        # The core's download guard (gateway.downloads): the Bot API's own origin only, any
        # file type a resident may send (the file host names it by the file's extension),
        # never a page (text/html: an error page or a portal, not the file).
        self._guard = downloads.Guard(home=api_base, max_bytes=max_bytes, types=FILE_TYPES)

    def fetch(self, file_id: str, destination: Path) -> int:
        """Download one file to ``destination`` (owner-only, like everything in DATA_DIR);
        returns its size. MediaError otherwise."""
        if not FILE_ID.fullmatch(file_id):
            raise MediaError("not a Telegram file_id", permanent=True)
        try:
            info = self._client.run(raw_call(self._client.bot, "getFile", {"file_id": file_id}))
        except BadRequest as exc:  # invalid file_id, file too big for a bot
            raise MediaError(redact(f"getFile refused: {exc}"), permanent=True) from exc
        except TelegramError as exc:
            raise MediaError(redact(f"getFile failed: {exc}"), permanent=False) from exc
        path = info.get("file_path") if isinstance(info, dict) else None
        size = info.get("file_size") if isinstance(info, dict) else None
        if not isinstance(path, str) or len(path) > MAX_FILE_PATH or not FILE_PATH.fullmatch(path):
            # A path (or a full URL) that would lead the download elsewhere than the file host.
            raise MediaError("getFile returned no usable file_path", permanent=True)
        if isinstance(size, int) and size > self._max:
            raise MediaError(f"file of {size} bytes over the {self._max}-byte cap", permanent=True)
        url = f"{self._base}/file/bot{self._token}/{path}"
        files.private_dir(destination.parent)
        partial = destination.with_suffix(destination.suffix + ".part")
        try:
            with files.open_private(partial) as out:
                got = downloads.download(self._guard, url, out=out)
        except downloads.Refused as exc:
            partial.unlink(missing_ok=True)
            raise MediaError(f"file not kept: {exc}", permanent=True) from exc
        except downloads.Answered as exc:
            partial.unlink(missing_ok=True)
            raise MediaError(
                f"file host answered {exc.status}", permanent=exc.status in (400, 404)
            ) from exc
        except downloads.Unreachable as exc:
            partial.unlink(missing_ok=True)
            raise MediaError(redact(f"download failed: {exc}"), permanent=False) from exc
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(destination)
        return got.size

    def close(self) -> None:
        self._client.close()
