"""``domainfm finance drift-reference``: fit the monitor's drift reference on the training data (heavy imports inside)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click


@click.command("drift-reference")
@click.option("--state", "state_path", default=".domainfm/finance-monitor.sqlite", show_default=True,
              help="The monitor's SQLite state to hold the reference.")
@click.option("--artifact", type=click.Path(exists=True, file_okay=False), default=None,
              help="The trained artifact: predicted labels and its encoder's embeddings (else --encoder, given labels).")
@click.option("--data", "data_source", default=None,
              help="Training data (a finance source); default: the data of the run that trained --artifact.")
@click.option("--split", type=click.Choice(["train", "all"]), default="train", show_default=True,
              help="train: the pinned training split of --data (as the run used it; with --artifact, the label mix "
                   "is its predictions on the held-out splits); all: every row.")
@click.option("--encoder", default=None, help="Sentence encoder when there is no --artifact (default: MiniLM).")
@click.option("--window", type=int, default=200, show_default=True, help="Items per drift test window.")
@click.option("--step", type=int, default=None, help="Items between tests (default: window / 4).")
@click.option("--false-alarm-rate", type=float, default=0.01, show_default=True,
              help="Chance that one test of an in-distribution window exceeds a threshold.")
@click.option("--windows", "n_windows", type=int, default=1000, show_default=True,
              help="Held-out reference windows used to choose the thresholds.")
@click.option("--patience", type=int, default=1, show_default=True, help="Tests in a row over a threshold to suggest retraining.")
@click.option("--cooldown", type=int, default=3, show_default=True, help="Tests in a row under both thresholds to end an episode.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--replace", is_flag=True, help="Replace an existing reference (its drift window restarts).")
@click.option("--device", default="auto", show_default=True)
def drift_reference_cmd(state_path: str, artifact: str | None, data_source: str | None, split: str,
                        encoder: str | None, window: int, step: int | None, false_alarm_rate: float, n_windows: int,
                        patience: int, cooldown: int, seed: int, replace: bool, device: str) -> None:
    """Store the drift reference in the monitor state; `finance monitor` then emits retrain_suggested events."""
    from domainfm.config import DEFAULT_BASE_MODEL
    from domainfm.device import resolve_device
    from domainfm.engine.drift import DriftConfig
    from domainfm.errors import DomainfmError
    from domainfm.kit import run_training_data, split_texts

    from domainfm_finance_sentiment import DOMAIN
    from domainfm_finance_sentiment.monitor.drift import artifact_embedder, embedder_from_spec, fit_reference
    from domainfm_finance_sentiment.monitor.store import MonitorStore

    try:
        config = DriftConfig(window=window, step=step, false_alarm_rate=false_alarm_rate, n_windows=n_windows,
                             patience=patience, cooldown=cooldown, seed=seed)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    source, options = run_training_data(artifact)
    source = data_source or source
    if source is None:
        raise click.UsageError("--data is required (no run.json next to --artifact names the training data)")
    store = MonitorStore(state_path)
    try:
        if store.load_drift_reference() is not None and not replace:
            raise click.ClickException(f"{state_path}: already holds a drift reference; pass --replace to refit it")
        texts, labels, heldout, origin = split_texts(DOMAIN, source, split, options if data_source is None else {})
        config.check_reference(len(texts))
        if artifact:
            from domainfm.types import Artifact

            from domainfm_finance_sentiment.model import FinancePredictor

            predictor = FinancePredictor.load(Artifact.load(artifact), resolve_device(device))
            spec: dict[str, Any] = {"kind": "artifact", "path": str(Path(artifact).resolve())}
            reference = fit_reference(texts, labels, artifact_embedder(predictor), config,
                                      classifier=predictor.predict_proba, heldout_texts=heldout, origin=origin,
                                      encoder=spec)
        else:
            spec = {"kind": "encoder", "model": encoder or DEFAULT_BASE_MODEL}
            reference = fit_reference(texts, labels, embedder_from_spec(spec, device), config, origin=origin,
                                      encoder=spec)
        ref_id = store.save_drift_reference(*reference.to_state())
    except (DomainfmError, ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        store.close()
    click.echo(json.dumps({"id": ref_id, **reference.describe()}, indent=2))
    sys.stdout.flush()
