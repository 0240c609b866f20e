"""Searching everything the gateway keeps for traces of one person.

Used by the erasure and log tests: every column of every table (text, JSON, and each binary
value the gateway can decrypt, raw payloads included), every file under a folder (the data
folder, the SQLite database and its journal), and Redis (keys, strings, hashes, lists, sets,
sorted sets, streams). A finding names where, never what (the tests print them).
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from redis import Redis
from sqlalchemy import select

from gateway.models import Base
from gateway.runtime import Runtime


def phone_forms(number: str) -> list[str]:
    """The ways a French number may be written: +33612345678, 0033612345678, 0612345678,
    06 12 34 56 78, 06.12.34.56.78, and the bare national digits."""
    digits = number.lstrip("+")
    forms = {number, digits, "00" + digits}
    if number.startswith("+33"):
        national = "0" + number[3:]
        pairs = [national[i : i + 2] for i in range(0, len(national), 2)]
        forms |= {national, " ".join(pairs), ".".join(pairs), number[3:]}
    return sorted(forms)


def _plain(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def in_database(runtime: Runtime, needles: Iterable[str]) -> list[str]:
    """Where in the database any of ``needles`` appears (in clear, in JSON, or inside a value
    the gateway can decrypt): ``table.column#id`` for each."""
    needles = [n for n in needles if n]
    found: list[str] = []
    with runtime.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            for row in connection.execute(select(table)).mappings():
                key = row.get("id", row.get("prefix", "?"))
                for column, value in row.items():
                    if value is None:
                        continue
                    texts = [_plain(value)]
                    if isinstance(value, (bytes, memoryview)):
                        raw = bytes(value)
                        texts = [raw.decode("latin-1")]
                        clear = decrypt_any(runtime, raw)
                        if clear is not None:
                            texts.append(clear)
                    if any(n in t for t in texts for n in needles):
                        found.append(f"{table.name}.{column}#{key}")
    return found


def decrypt_any(runtime: Runtime, value: bytes) -> str | None:
    """The clear text of a ciphertext of the gateway's, whatever row it is bound to (a test
    knows the key: an attacker with the key would get this far)."""
    vault = runtime.vault
    decrypt_unbound = getattr(vault, "decrypt_any_context", None)
    try:
        if decrypt_unbound is not None:
            clear = decrypt_unbound(value)
            return None if clear is None else bytes(clear).decode("utf-8", "replace")
        return vault.decrypt_bytes(value).decode("utf-8", "replace")
    except Exception:
        return None


def in_files(root: Path, needles: Iterable[str]) -> list[str]:
    """Files under ``root`` whose bytes contain any of ``needles`` (UTF-8 and UTF-16, as
    SQLite may store text either way)."""
    patterns = []
    for needle in needles:
        if needle:
            patterns += [needle.encode(), needle.encode("utf-16-le")]
    found = []
    for path in _files(root):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if any(p in data for p in patterns):
            found.append(str(path.relative_to(root)))
    return found


def _files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_socket():
            yield path


def in_redis(redis: Redis, needles: Iterable[str]) -> list[str]:
    """Redis keys whose name or value holds any of ``needles``."""
    needles_b = [n.encode() for n in needles if n]
    found = []
    for key in redis.scan_iter(count=1000):
        kind = redis.type(key)
        values: list[bytes] = [key]
        if kind == b"string":
            values.append(redis.get(key) or b"")
        elif kind == b"hash":
            for k, v in redis.hgetall(key).items():
                values += [k, v]
        elif kind == b"list":
            values += redis.lrange(key, 0, -1)
        elif kind == b"set":
            values += list(redis.smembers(key))
        elif kind == b"zset":
            values += [m for m, _ in redis.zrange(key, 0, -1, withscores=True)]
        elif kind == b"stream":  # RQ 2 keeps a job's results, failures' tracebacks included
            for _id, fields in redis.xrange(key):
                for k, v in fields.items():
                    values += [k, v]
        values += [d for v in values if (d := _unpacked(v)) is not None]
        if any(n in v for v in values for n in needles_b):
            found.append(key.decode("utf-8", "replace"))
    return found


def _unpacked(value: bytes) -> bytes | None:
    """RQ stores a failure's traceback zlib-compressed (and base64-encoded in its results
    stream): what a reader of Redis gets back with two calls."""
    for attempt in (lambda v: zlib.decompress(base64.b64decode(v, validate=True)), zlib.decompress):
        try:
            return bytes(attempt(value))
        except (ValueError, zlib.error):
            continue
    return None
