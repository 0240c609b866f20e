"""The keyring: the keys that encrypt residents' addresses, each with a short id.

Why a keyring: with one key derived from ``SECRET_KEY`` and no key id in the ciphertexts, the
key could never be changed (every value would have to be re-encrypted at the same instant).
Each ciphertext now names the key it was written with (gateway.privacy, format 3), so a new key
can become current at once while the values written under the old ones are re-encrypted in
batches (``gateway keys rotate``, gateway.rotation), the old key kept until none is left.

Where the keys are: in the key file that already held ``SECRET_KEY`` (``SECRET_KEY_FILE``, by
default ``secrets/<data>.key`` beside DATA_DIR), one key a line::

    <the installation's first key>          (a bare line: key id 1, as every older file is)
    2 <a newer key>
    3 <the newest key>                      (the highest id not retired: the current one)
    1 retired                               (a retired key: its line names only its id)

An existing installation's file (one bare line) is key id 1 with no operator action, and a key
given as ``SECRET_KEY`` in the environment is key id 1 too (such an installation cannot
rotate: ``gateway keys rotate`` needs the file to add a key to).

Key id 1 is also the installation's root secret: console sessions, CSRF tokens, the web keys
(gateway.webkeys), recording tokens and the open-data pseudonyms derive from it, and they do
not rotate (``docs/privacy.md``, "Keys and rotation", says why); the residents' look-up hashes
are keyed by the current key and re-hashed by a rotation, but for the rows that keep no
address, which stay under key id 1's hash. Retiring key id 1 therefore keeps its secret in the
file, marked ``retired``: the vault no longer decrypts with it, the rest goes on deriving from
it. A retired newer key's
secret is removed from the file.

How running processes learn a new key: the vault looks at the key file's modification time
before it encrypts, at most once every ``RELOAD_EVERY`` seconds, and reads the file again when
it changed; a ciphertext naming a key id it does not know makes it read the file at once.
``gateway keys rotate`` waits a little longer than ``RELOAD_EVERY`` after writing the file
before it re-encrypts, and passes over the tables until nothing is left under an older key, so
a value a lagging process wrote under the old key is caught by the next pass.

Writes to the file are atomic (a new file renamed over the old one, owner-only, fsynced) and
serialised between processes by an exclusive lock on a sibling ``.lock`` file. No key is ever
logged or printed: only ids.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from gateway import files

# Seconds between two looks at the key file's modification time, in each process.
RELOAD_EVERY = 1.0
# Key ids fit in the two bytes a format 3 ciphertext gives them.
MAX_KEY_ID = 0xFFFF
RETIRED = "retired"


class KeyringError(ValueError):
    """A key file that cannot be read as a keyring (never carries a key)."""


@dataclass(frozen=True)
class Keyring:
    """Key id to secret, for every key not retired; ``retired``: the ids retired, whose
    secrets the vault no longer uses (key id 1's stays in ``root``)."""

    keys: dict[int, str]
    root: str
    retired: frozenset[int] = field(default_factory=frozenset)

    @property
    def current(self) -> int:
        return max(self.keys)

    @property
    def ids(self) -> list[int]:
        return sorted(set(self.keys) | set(self.retired))

    @classmethod
    def single(cls, secret_key: str) -> Keyring:
        """An installation with one key (an older key file, or SECRET_KEY given as such)."""
        return cls({1: secret_key}, secret_key)

    @classmethod
    def parse(cls, text: str, source: str = "the key file") -> Keyring:
        keys: dict[int, str] = {}
        retired: set[int] = set()
        seen: set[int] = set()
        root = ""
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            is_retired = False
            if len(parts) == 1:
                key_id, secret = 1, parts[0]
            elif len(parts) == 2 and parts[0].isdigit():
                key_id, secret = int(parts[0]), parts[1]
                is_retired = secret == RETIRED  # a retired key whose secret is gone
            elif len(parts) == 3 and parts[0] == "1" and parts[2] == RETIRED:
                key_id, secret, is_retired = 1, parts[1], True  # the root, retired
            else:
                raise KeyringError(f"{source}, line {number}: not '<id> <key>' (nothing shown)")
            if not 1 <= key_id <= MAX_KEY_ID:
                raise KeyringError(f"{source}, line {number}: key id {key_id} out of range")
            if key_id in seen:
                raise KeyringError(f"{source}: key id {key_id} appears twice")
            seen.add(key_id)
            if key_id == 1:
                root = secret
            if is_retired:
                retired.add(key_id)
            else:
                keys[key_id] = secret
        if not root:
            raise KeyringError(f"{source}: no key id 1 (the installation's first key)")
        if not keys:
            raise KeyringError(f"{source}: every key is retired")
        return cls(keys, root, frozenset(retired))

    def render(self) -> str:
        lines = ["# Agora gateway keyring: see docs/privacy.md, 'Keys and rotation'."]
        for key_id in self.ids:
            if key_id == 1:
                lines.append(self.root if 1 in self.keys else f"1 {self.root} {RETIRED}")
            elif key_id in self.retired:
                lines.append(f"{key_id} {RETIRED}")
            else:
                lines.append(f"{key_id} {self.keys[key_id]}")
        return "\n".join(lines) + "\n"

    def with_new_key(self) -> Keyring:
        new_id = max(self.ids) + 1
        if new_id > MAX_KEY_ID:  # pragma: no cover - 65535 rotations
            raise KeyringError("no key id left")
        return Keyring({**self.keys, new_id: secrets.token_urlsafe(48)}, self.root, self.retired)

    def without(self, key_id: int) -> Keyring:
        keys = {k: v for k, v in self.keys.items() if k != key_id}
        return Keyring(keys, self.root, self.retired | {key_id})


def read(path: Path) -> Keyring:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KeyringError(f"cannot read the key file {path}: {exc.strerror}") from exc
    return Keyring.parse(text, str(path))


def write(path: Path, ring: Keyring) -> None:
    """Replace the key file atomically: a reader sees the old ring or the new one, whole."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.new")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, files.PRIVATE_FILE)
    try:
        os.fchmod(fd, files.PRIVATE_FILE)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(ring.render())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """One process at a time changes the key file (two rotations never mint two keys)."""
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT, files.PRIVATE_FILE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def mtime(path: Path | None) -> int | None:
    if path is None:
        return None
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None
