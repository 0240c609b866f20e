"""Files the gateway writes are private: folders 0700, files 0600, whatever the umask.

The data folder holds residents' recordings, photos, mail and the database: nobody but the
gateway's own user has any business reading them, and on a shared machine the default umask
(022) would let every account read them. The `gateway` command sets a umask of 077 for all it
creates (gateway.cli); the helpers here give the same modes when the gateway runs as a library
(tests, an embedding application), and ``secure_data_dir`` tightens a data folder made by an
older version. All gateway processes sharing a data folder run as one user.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
# What "too open" means: any permission for the group or for others.
OPEN_BITS = 0o077
PROCESS_UMASK = 0o077


def private_dir(path: Path) -> Path:
    """Create ``path`` and any missing parents as owner-only folders. Existing folders are left
    as they are (an operator's /etc/agora is theirs; an old data folder is secure_data_dir's)."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            folder.mkdir(mode=PRIVATE_DIR)  # a umask only removes bits: 0700 stays 0700
    return path


def open_private(path: Path) -> BinaryIO:
    """A new (or truncated) file, owner-only from its first byte, for writing."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    os.fchmod(fd, PRIVATE_FILE)  # an existing file keeps its mode through O_CREAT
    return os.fdopen(fd, "wb")


def write_private(path: Path, data: bytes) -> None:
    with open_private(path) as fh:
        fh.write(data)


def private_file(path: Path) -> None:
    """Create ``path`` empty and owner-only if it does not exist; tighten it if it does."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    _tighten(path)


def _tighten(path: Path) -> bool:
    """Remove the group's and others' permissions from one path we own; True if changed."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode) or not st.st_mode & OPEN_BITS or st.st_uid != os.geteuid():
        return False
    try:
        os.chmod(path, stat.S_IMODE(st.st_mode) & ~OPEN_BITS)
    except OSError as exc:  # a read-only mount, a file system without modes
        log.warning("could not make %s private: %s", path, exc.strerror)
        return False
    return True


def secure_data_dir(data_path: Path) -> None:
    """Create the data folder owner-only; if it exists and others may enter it (made by an
    older version, or by hand), make everything in it private, once, and say so.

    Only then is the tree walked: once the folder is 0700 nobody else can reach what is
    inside, whatever its mode, so a start-up never pays for walking thousands of recordings.
    """
    if not data_path.exists():
        private_dir(data_path)
        return
    try:
        if not data_path.stat().st_mode & OPEN_BITS:
            return
    except OSError:
        return
    changed = 0
    for root, dirs, names in os.walk(data_path):
        for name in dirs + names:
            changed += _tighten(Path(root) / name)
    changed += _tighten(data_path)
    if changed:
        log.warning(
            "the data folder %s was readable by other users: %d file(s) and folder(s) made private",
            data_path,
            changed,
        )
