"""Backups an operator can restore: ``gateway backup --output FILE`` and ``gateway restore FILE``.

One archive (tar, gzip) holds what a restored gateway needs:

- ``database.sqlite3``: on SQLite, a copy made with SQLite's online backup API, consistent
  while ``gateway serve`` and workers write (one snapshot of the whole file, taken under a
  read lock that writers in WAL mode do not wait for);
- ``data/…``: the data folder's files (recordings, photos and files residents sent, greetings,
  the city's recorded answers, long texts), copied after the database snapshot. A file is
  written before the row that names it is committed, so every file the snapshot names is in
  the archive, unless erasure or a purge removed it in between (then the restored row names a
  file that is gone, as it would have a moment later). Not copied: the database itself, and
  the embedded Redis's folder (queues are rebuilt from the database by the sweeper);
- ``key/secret.key``: the key file (SECRET_KEY_FILE: every key of the keyring), without which
  no address decrypts. ``--without-key`` leaves it out, for an operator who keeps the key
  elsewhere (then the archive alone reveals no address);
- ``manifest.json``: the format, the date, the database kind and schema revision, and each
  member's size and SHA-256, checked by ``restore`` before anything is written.

On PostgreSQL the database is not in the archive: ``pg_dump`` is the tool for it (its custom
format, restorable with ``pg_restore``; see docs/operations.md), run beside this command; the
archive holds the files and the key the same way.

``restore`` writes onto an empty data folder only (it never merges into a running
installation) and never overwrites a key file that differs from the archive's. Members are
checked before extraction: regular files under the three known prefixes, no absolute path,
no ``..``, no links, sizes and checksums as the manifest says.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import sqlite3
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from gateway import files
from gateway.settings import Settings

log = logging.getLogger(__name__)

FORMAT = 1
MANIFEST = "manifest.json"
DATABASE = "database.sqlite3"
DATA = "data"
KEY = "key/secret.key"
# What the data folder holds that is not data: the database and its journals (copied by the
# backup API instead), the embedded Redis's state, pid files and sockets.
SKIPPED_DIRS = {"redis"}
SKIPPED_SUFFIXES = ("-wal", "-shm", "-journal", ".pid", ".sock", ".lock")
CHUNK = 1024 * 1024


class BackupError(RuntimeError):
    """A backup or a restore that cannot be done; the message says why and what to do."""


@dataclass
class Summary:
    database: str  # "sqlite" (in the archive) or "postgresql" (pg_dump's, beside it)
    files: int = 0
    bytes: int = 0
    key: bool = False
    revision: str | None = None
    skipped: list[str] = field(default_factory=list)


def _sqlite_path(settings: Settings) -> Path | None:
    url = make_url(settings.effective_database_url)
    if url.get_backend_name() != "sqlite":
        return None
    if not url.database or url.database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return Path(url.database).expanduser().resolve()


def _revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def _data_files(data: Path, database: Path | None) -> Iterator[Path]:
    for root, dirs, names in os.walk(data):
        here = Path(root)
        if here == data:
            dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS]
        dirs.sort()
        for name in sorted(names):
            path = here / name
            if database is not None and path.name.startswith(database.name):
                continue  # the database and its journals: copied by the backup API
            if name.endswith(SKIPPED_SUFFIXES) or not path.is_file() or path.is_symlink():
                continue
            yield path


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


def backup(settings: Settings, output: Path, *, with_key: bool = True) -> Summary:
    """Write the archive at ``output`` (replaced atomically; readable by its owner only)."""
    output = output.expanduser().resolve()
    data = settings.data_path
    if output.is_relative_to(data):
        raise BackupError(f"write the backup outside the data folder {data}")
    database = _sqlite_path(settings)
    summary = Summary(database="sqlite" if database else "postgresql")
    summary.revision = _revision(settings.effective_database_url)
    key_path = settings.secret_key_path
    if with_key and not key_path.is_file():
        raise BackupError(
            f"no key file at {key_path} (SECRET_KEY given in the environment?): "
            "back the key up yourself and run with --without-key"
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    members: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="agora-backup-") as scratch:
        partial = output.with_name(output.name + ".partial")
        try:
            with (
                files.open_private(partial) as raw,
                tarfile.open(fileobj=raw, mode="w:gz", compresslevel=1) as tar,
            ):

                def add(path: Path, name: str) -> None:
                    size = path.stat().st_size
                    members[name] = {"size": size, "sha256": _digest(path)}
                    info = tar.gettarinfo(str(path), arcname=name)
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                    info.mode = 0o600
                    with path.open("rb") as handle:
                        tar.addfile(info, handle)
                    summary.bytes += size

                if database is not None:
                    if not database.is_file():
                        raise BackupError(f"no database at {database}: nothing to back up")
                    copy = Path(scratch) / DATABASE
                    source = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
                    target = sqlite3.connect(copy)
                    try:
                        source.backup(target)  # one step: a consistent snapshot
                    finally:
                        target.close()
                        source.close()
                    add(copy, DATABASE)
                # After the snapshot: every file it names was written before it (see above).
                for path in _data_files(data, database):
                    try:
                        add(path, f"{DATA}/{path.relative_to(data).as_posix()}")
                    except FileNotFoundError:  # erased or purged while the backup ran
                        summary.skipped.append(path.relative_to(data).as_posix())
                        continue
                    summary.files += 1
                if with_key:
                    add(key_path, KEY)
                    summary.key = True
                manifest = {
                    "format": FORMAT,
                    "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "database": summary.database,
                    "revision": summary.revision,
                    "members": members,
                }
                encoded = json.dumps(manifest, indent=1, sort_keys=True).encode("utf-8")
                info = tarfile.TarInfo(MANIFEST)
                info.size, info.mode = len(encoded), 0o600
                tar.addfile(info, io.BytesIO(encoded))
            os.replace(partial, output)
        finally:
            partial.unlink(missing_ok=True)  # a failed backup leaves no half archive
    log.info(
        "backup: %d file(s), %d byte(s), database %s, key %s",
        summary.files,
        summary.bytes,
        summary.database,
        "included" if summary.key else "left out",
    )
    return summary


def _safe(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise BackupError(f"refused: the archive names {name!r} outside its folders")
    if name not in (MANIFEST, DATABASE, KEY) and path.parts[0] != DATA:
        raise BackupError(f"refused: unexpected member {name!r} in the archive")
    return path


def _manifest(tar: tarfile.TarFile) -> dict[str, object]:
    try:
        member = tar.getmember(MANIFEST)
        handle = tar.extractfile(member)
        assert handle is not None
        manifest = json.loads(handle.read(4 * CHUNK))
    except (KeyError, AssertionError, ValueError) as exc:
        raise BackupError("not a gateway backup: no readable manifest.json") from exc
    if manifest.get("format") != FORMAT:
        raise BackupError(f"backup format {manifest.get('format')!r}: this gateway reads {FORMAT}")
    return dict(manifest)


def _is_empty(folder: Path) -> bool:
    return not folder.exists() or not any(folder.iterdir())


def restore(settings: Settings, archive: Path) -> Summary:
    """Restore ``archive`` onto this installation's empty data folder (and key file)."""
    data = settings.data_path
    if not _is_empty(data):
        raise BackupError(
            f"the data folder {data} is not empty: restore onto an empty one "
            "(set GATEWAY_DATA_DIR to a new folder, or move this one away)"
        )
    try:
        tar = tarfile.open(archive, mode="r:*")
    except (OSError, tarfile.TarError) as exc:
        raise BackupError(f"cannot read {archive}: {exc}") from exc
    try:
        with tar:
            return _restore(settings, tar, data)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise BackupError(
            f"{archive} is damaged or truncated ({type(exc).__name__}): nothing was restored"
            if _is_empty(data)
            else f"{archive}: restore stopped ({type(exc).__name__}: {exc})"
        ) from exc


def _restore(settings: Settings, tar: tarfile.TarFile, data: Path) -> Summary:
    manifest = _manifest(tar)
    expected = dict(manifest.get("members") or {})  # type: ignore[call-overload]
    database = _sqlite_path(settings)
    summary = Summary(database=str(manifest.get("database")))
    summary.revision = manifest.get("revision")  # type: ignore[assignment]
    if summary.database == "sqlite" and database is None:
        raise BackupError(
            "this backup holds a SQLite database but DATABASE_URL names another server: "
            "unset it to restore the embedded set-up"
        )
    key_path = settings.secret_key_path
    members = [m for m in tar.getmembers() if m.name != MANIFEST]
    for member in members:
        _safe(member.name)
        if not member.isfile():
            raise BackupError(f"refused: {member.name!r} is not a regular file")
        if member.name not in expected:
            raise BackupError(f"refused: {member.name!r} is not in the manifest")
    missing = set(expected) - {m.name for m in members}
    if missing:
        raise BackupError(f"the archive is incomplete: {len(missing)} member(s) missing")
    if KEY in expected and key_path.exists():
        if _member_digest(tar, KEY) != _digest(key_path):
            raise BackupError(
                f"a different key file exists at {key_path}: move it away first "
                "(it would no longer decrypt this backup's addresses otherwise)"
            )
    # Everything checked against the manifest before a byte lands in the data folder.
    for member in members:
        declared = expected[member.name]
        if (
            member.size != declared["size"]
            or _member_digest(tar, member.name) != declared["sha256"]
        ):
            raise BackupError(f"{member.name}: damaged (size or checksum differs)")
    files.private_dir(data)
    for member in members:
        if member.name == DATABASE:
            assert database is not None
            target = database
        elif member.name == KEY:
            if key_path.exists():
                summary.key = True
                continue  # the same key, already in place
            files.private_dir(key_path.parent)
            target = key_path
            summary.key = True
        else:
            target = data.joinpath(*PurePosixPath(member.name).parts[1:])
            summary.files += 1
        files.private_dir(target.parent)
        source = tar.extractfile(member)
        assert source is not None
        with files.open_private(target) as out:
            shutil.copyfileobj(source, out, CHUNK)
        summary.bytes += member.size
    log.info("restore: %d file(s), database %s", summary.files, summary.database)
    return summary


def _member_digest(tar: tarfile.TarFile, name: str) -> str:
    source = tar.extractfile(name)
    if source is None:
        raise BackupError(f"refused: {name!r} is not a regular file")
    sha = hashlib.sha256()
    while chunk := source.read(CHUNK):
        sha.update(chunk)
    return sha.hexdigest()
