"""`metrics.csv`: one row per epoch (always attached by training.run)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import lightning as L


class EpochTable(L.Callback):
    """`metrics.csv` in the run dir: one row per epoch with every epoch-level metric."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.rows: list[dict] = []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        row = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        for k, v in sorted(trainer.callback_metrics.items()):
            if k.endswith("_step"):
                continue
            value = float(v)
            row[k] = value if math.isfinite(value) else None
        self.rows.append(row)
        if trainer.is_global_zero:  # DDP: one writer for the one metrics.csv
            self.write()

    def write(self) -> None:
        fields: list[str] = []
        for row in self.rows:
            fields += [k for k in row if k not in fields]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(self.rows)
