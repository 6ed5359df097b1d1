"""One domainfm run as one MLflow run (the Trainer's own MLflow callback nests a child run per trained model)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from domainfm.tracking import MLFLOW_ARTIFACTS, MLFLOW_DB, default_tracking_uri
from domainfm.tracking.flatten import as_text, tracker_key

EXPERIMENT_PREFIX = "domainfm-"
_MAX_PARAM = 6000  # MLflow's limit on a param value


class MlflowTracker:
    """Logs into one MLflow run, started on creation and ended by :meth:`close`."""

    name = "mlflow"

    def __init__(self, *, run_name: str, domain: str, output_dir: Path, tags: Mapping[str, str]) -> None:
        import mlflow

        self.mlflow = mlflow
        self.uri = default_tracking_uri(output_dir)
        self.embedded = self.uri.endswith("/" + MLFLOW_DB) and not os.environ.get("MLFLOW_TRACKING_URI")
        mlflow.set_tracking_uri(self.uri)
        experiment = EXPERIMENT_PREFIX + domain
        if mlflow.get_experiment_by_name(experiment) is None and self.embedded:
            # artifacts beside the store, not in ./mlruns of whatever directory the run started in
            location = (Path(output_dir) / MLFLOW_ARTIFACTS).resolve().as_uri()
            mlflow.create_experiment(experiment, artifact_location=location)
        mlflow.set_experiment(experiment)
        self._saved_nested = os.environ.get("MLFLOW_NESTED_RUN")
        self.run = mlflow.start_run(run_name=run_name, tags=dict(tags))
        self.run_id = self.run.info.run_id
        self.client = mlflow.MlflowClient()
        # the Trainer's MLflow callback then opens a child run per trained model inside this one
        os.environ["MLFLOW_NESTED_RUN"] = "TRUE"

    def params(self, values: Mapping[str, Any]) -> None:
        items = {tracker_key(k): as_text(v)[:_MAX_PARAM] for k, v in values.items()}
        keys = list(items)
        for start in range(0, len(keys), 100):  # MLflow's batch limit
            self.mlflow.log_params({k: items[k] for k in keys[start : start + 100]}, run_id=self.run_id)

    def metrics(self, values: Mapping[str, float], step: int | None = None) -> None:
        clean = {tracker_key(k): float(v) for k, v in values.items() if _finite(v)}
        if clean:
            self.mlflow.log_metrics(clean, step=step, run_id=self.run_id)

    def tags(self, values: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        # by run id, never the fluent API's active run (a Trainer's child run may be the active one)
        tags = [RunTag(tracker_key(k), as_text(v)[:_MAX_PARAM]) for k, v in values.items()]
        self.client.log_batch(self.run_id, tags=tags)

    def text(self, name: str, value: str) -> None:
        self.mlflow.log_text(value, name, run_id=self.run_id)

    def files(self, paths: list[Path], folder: str | None = None) -> None:
        for path in paths:
            if path.is_file():
                self.mlflow.log_artifact(str(path), artifact_path=folder, run_id=self.run_id)

    def close(self, status: str = "FINISHED") -> None:
        if self._saved_nested is None:
            os.environ.pop("MLFLOW_NESTED_RUN", None)
        else:
            os.environ["MLFLOW_NESTED_RUN"] = self._saved_nested
        active = self.mlflow.active_run()
        while active is not None and active.info.run_id != self.run_id:  # a child a Trainer left open
            self.mlflow.end_run(status=status)
            active = self.mlflow.active_run()
        if active is not None:
            self.mlflow.end_run(status=status)
        else:
            self.client.set_terminated(self.run_id, status=status)


def _finite(value: Any) -> bool:
    import math

    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))
