"""``domainfm predict RUN --engine ray``: batch prediction over Ray Data.

Ray Data reads the input files (Parquet, JSONL or CSV), an actor pool runs the model (each actor loads it once,
through :func:`domainfm.kit.load_run_predictor`, so the artifact's inference precision and every
``domainfm_predict`` wrapper apply) and the predictions are written as Parquet shards. A row has the fields of a
line of the in-process ``predict`` (:func:`domainfm.cli.main.prediction_fields`); the nested ones (``scores``,
``ranking``, ``explanation``, ``extra``) are JSON text so that every domain's output has one Parquet schema.
:func:`read_predictions` turns the shards back into those lines' dictionaries.
"""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from domainfm.errors import DataError

SUFFIXES = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}
JSON_FIELDS = ("scores", "ranking", "explanation", "extra")
FLOAT_FIELDS = ("value", "confidence")
BOOL_FIELDS = ("abstained",)
STRING_FIELDS = ("id", "label", "device")


def output_schema() -> Any:
    """The Parquet schema of a prediction row (every field of :class:`~domainfm.types.Prediction` plus ``device``)."""
    import pyarrow as pa

    fields = [(n, pa.string()) for n in STRING_FIELDS + JSON_FIELDS]
    fields += [(n, pa.float64()) for n in FLOAT_FIELDS] + [(n, pa.bool_()) for n in BOOL_FIELDS]
    return pa.schema(fields)


def input_files(pattern: str) -> tuple[list[str], str]:
    """The files ``pattern`` (a file, a folder of shards or a glob) names, absolute, and their one format."""
    path = Path(pattern)
    if path.is_dir():
        files = sorted(str(p) for p in path.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
    else:
        files = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
    if not files or not all(Path(f).is_file() for f in files):
        raise DataError(f"{pattern}: no such input file (expected a Parquet, JSONL or CSV file, a folder or a glob)")
    formats = {SUFFIXES.get(Path(f).suffix.lower()) for f in files}
    if None in formats:
        odd = next(f for f in files if Path(f).suffix.lower() not in SUFFIXES)
        raise DataError(f"{odd}: unsupported input format (expected .parquet, .jsonl, .json or .csv)")
    if len(formats) > 1:
        raise DataError(f"{pattern}: mixes formats {sorted(f for f in formats if f)}; give one format at a time")
    return [os.path.abspath(f) for f in files], formats.pop()  # type: ignore[return-value]


def to_row(fields: dict[str, Any]) -> dict[str, Any]:
    """A :func:`prediction_fields` dictionary as a Parquet row (nested fields as JSON text)."""
    row: dict[str, Any] = {name: None for name in output_schema().names}
    for name, value in fields.items():
        if name not in row:
            raise DataError(f"prediction field {name!r} has no Parquet column; add it to domainfm.scale.ray_predict")
        row[name] = json.dumps(value) if name in JSON_FIELDS and value is not None else value
    return row


def from_row(row: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`to_row`: the dictionary a line of the in-process ``predict`` holds."""
    out: dict[str, Any] = {}
    for name, value in row.items():
        if value is None:
            continue
        out[name] = json.loads(value) if name in JSON_FIELDS else value
    return out


def read_predictions(folder: str | Path) -> list[dict[str, Any]]:
    """Every prediction in the Parquet shards of ``folder`` (shard order, then row order)."""
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    for shard in sorted(Path(folder).glob("*.parquet")):
        rows += [from_row(r) for r in pq.read_table(shard).to_pylist()]
    return rows


class PredictActor:
    """One model per actor, loaded in the constructor; ``__call__`` predicts a batch of records (a pandas frame)."""

    def __init__(self, ref: str, variant: str | None, device: str, threads: int, max_text_chars: int) -> None:
        if device != "cuda":  # an actor on CPUs uses the cores Ray gave it, not every core of the node
            import torch

            torch.set_num_threads(max(1, threads))
        from domainfm.kit import load_run_predictor

        self.model = load_run_predictor(ref, variant=variant, device=device)
        self.max_text_chars = max_text_chars

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        from domainfm.cli.main import prediction_fields
        from domainfm.io import check_record_texts

        records = [_clean_record(r) for r in batch.to_dict("records")]
        for i, record in enumerate(records):
            check_record_texts(record, f"record {record.get('id', i)}", self.max_text_chars)
        rows = [to_row(prediction_fields(p, self.model.device)) for p in self.model.predict(records)]
        return pa.Table.from_pylist(rows, schema=output_schema())


def _clean_record(record: dict[str, Any]) -> dict[str, Any]:
    """Drop the missing cells pandas fills in (NaN / None), as the in-process readers never produce them."""
    import math

    return {k: v for k, v in record.items() if v is not None and not (isinstance(v, float) and math.isnan(v))}


@dataclass
class RayPredictSummary:
    rows: int
    shards: int
    output: Path
    seconds: float
    actors: int
    gpus_per_actor: float


def predict_with_ray(
    ref: str,
    input_pattern: str,
    output: str | Path,
    *,
    variant: str | None = None,
    output_dir: str = "runs",
    batch_size: int = 64,
    concurrency: int = 1,
    cpus_per_actor: float = 1.0,
    device: str = "auto",
    max_text_chars: int = 10_000,
    progress: bool = True,
) -> RayPredictSummary:
    """Predict every record of ``input_pattern`` with the model ``ref`` names and write Parquet shards into
    ``output`` (an empty or new folder, filled atomically: it appears when every shard is written)."""
    import time

    from domainfm.io import atomic_directory
    from domainfm.run_layout import resolve_model
    from domainfm.scale.cluster import cluster_gpus, ensure_ray

    layout = resolve_model(ref, variant=variant, output_dir=output_dir)  # one-line errors before Ray starts
    model_dir = str((layout.run_dir or layout.artifact_dir).resolve())
    files, fmt = input_files(input_pattern)
    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise DataError(f"{output}: exists and is not an empty folder; name a new output folder")
    ray = ensure_ray()
    from ray.data import DataContext

    context = DataContext.get_current()
    context.execution_options.preserve_order = True  # shards in input order, like the in-process output
    context.enable_progress_bars = progress
    # Parquet's V2 reader lists files in a 1-CPU task that `num_cpus=0` does not reach: with every CPU held by a
    # model actor it would never run (on a 1-CPU node, never at all). The V1 reader honours num_cpus=0.
    context.use_datasource_v2 = False
    gpus = 1.0 if device != "cpu" and cluster_gpus() >= 1 else 0.0
    # Reading and writing take no CPU slot: with every CPU held by a model actor, a 1-CPU read task would never
    # be scheduled (Ray Data waits forever). Parsing is cheap next to the model.
    reader = {"parquet": ray.data.read_parquet, "json": partial(ray.data.read_json, lines=True),
              "csv": ray.data.read_csv}[fmt]
    start = time.perf_counter()
    dataset = reader(files, num_cpus=0).map_batches(
        PredictActor,
        fn_constructor_kwargs={"ref": model_dir, "variant": layout.variant, "device": "cuda" if gpus else device,
                               "threads": int(cpus_per_actor), "max_text_chars": max_text_chars},
        batch_size=batch_size,
        batch_format="pandas",
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        num_cpus=cpus_per_actor,
        num_gpus=gpus,
    )
    with atomic_directory(output) as tmp:
        try:
            dataset.write_parquet(str(tmp), ray_remote_args={"num_cpus": 0})
        except Exception as exc:  # a user error inside an actor arrives wrapped; show its own line
            raise _unwrap(exc) from None
        shards = sorted(tmp.glob("*.parquet"))
        rows = sum(_parquet_rows(s) for s in shards)
    return RayPredictSummary(rows, len(shards), output, time.perf_counter() - start, concurrency, gpus)


def _parquet_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


def _unwrap(exc: BaseException) -> BaseException:
    """The DomainfmError that failed inside a Ray worker (Ray wraps it, sometimes only as traceback text), for a
    one-line report; any other error as it came."""
    import re

    from domainfm import errors

    seen: set[int] = set()
    stack = [exc]
    while stack:
        err = stack.pop()
        if err is None or id(err) in seen:
            continue
        seen.add(id(err))
        if isinstance(err, errors.DomainfmError):
            return err
        stack += [err.__cause__, err.__context__, getattr(err, "cause", None)]  # type: ignore[list-item]
    found = re.findall(r"domainfm\.errors\.(\w+): (.+)", str(exc))
    if found:
        name, message = found[-1]
        kind = getattr(errors, name, errors.DomainfmError)
        if isinstance(kind, type) and issubclass(kind, errors.DomainfmError):
            return kind(message.strip())
    return exc
