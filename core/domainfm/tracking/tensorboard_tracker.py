"""One domainfm run's figures as TensorBoard event files under ``<run dir>/tensorboard/run/``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from domainfm.tracking.flatten import as_text, tracker_key

RUN_LOGDIR = "run"


class TensorBoardTracker:
    """Scalars and text through ``torch.utils.tensorboard`` (the writer the Trainer's callback uses too)."""

    name = "tensorboard"

    def __init__(self, logdir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.logdir = logdir
        self.writer = SummaryWriter(log_dir=str(logdir))

    def params(self, values: Mapping[str, Any]) -> None:
        table = "| field | value |\n| --- | --- |\n" + "\n".join(
            f"| {k} | {as_text(v).replace('|', '/')} |" for k, v in sorted(values.items()))
        self.writer.add_text("config", table, 0)

    def metrics(self, values: Mapping[str, float], step: int | None = None) -> None:
        for key, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(tracker_key(key), float(value), step or 0)

    def tags(self, values: Mapping[str, Any]) -> None:
        for key, value in values.items():
            self.writer.add_text(tracker_key(key), as_text(value), 0)

    def text(self, name: str, value: str) -> None:
        self.writer.add_text(tracker_key(name), value, 0)

    def files(self, paths: list[Path], folder: str | None = None) -> None:
        return None  # TensorBoard keeps no files; the run directory has them

    def close(self, status: str = "FINISHED") -> None:
        self.writer.add_text("status", status, 0)
        self.writer.flush()
        self.writer.close()
