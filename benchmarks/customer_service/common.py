"""What the customer_service benchmark parts share: the base model, timestamped log lines and the
``--finish-by`` clock."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone

BASE = "sentence-transformers/all-MiniLM-L6-v2"
BASE_SIZE = "sentence-transformers/all-mpnet-base-v2"
BASE_SIZE_RESULTS = "results-mpnet.json"  # where --base-size runs write (their headline is merged into results.json)


def encoder_of(args: argparse.Namespace) -> str:
    """The encoder the intent parts fine-tune: ``--base`` (default the packaged MiniLM)."""
    return getattr(args, "base", None) or BASE


def short_name(model: str) -> str:
    """``sentence-transformers/all-mpnet-base-v2`` -> ``all-mpnet-base-v2`` (for method descriptions)."""
    return model.rsplit("/", 1)[-1]


def log(msg: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)



def minutes_left(args: argparse.Namespace) -> float | None:
    """Minutes until ``--finish-by`` (None without a deadline)."""
    if not args.finish_by:
        return None
    return (args.finish_by - datetime.now(timezone.utc)).total_seconds() / 60.0
