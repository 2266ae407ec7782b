"""`metrics.csv`: one row per epoch (always attached by training.run). `time/epoch_seconds` (the
epoch clock's) is each epoch's wall time, training and validation: what a resumed run
recovers the time of a SIGKILLed segment from (training.summary.add_killed_segments)."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import lightning as L

from tlbench import atomic


class EpochTable(L.Callback):
    """`metrics.csv` in the run dir: one row per epoch with every epoch-level metric. Not Lightning
    2.6.6's CSVLogger (tried): it writes a row per log call, and reopening it (resume) deletes
    the previous metrics.csv."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.rows: list[dict] = []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        row = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        for k, v in sorted(trainer.callback_metrics.items()):
            if k == "step" or k.endswith("_step"):  # `step`: the x-axis value the module logs
                continue
            value = float(v)
            row[k] = value if math.isfinite(value) else None
        self.rows.append(row)
        if trainer.is_global_zero:  # DDP: one writer for the one metrics.csv
            self.write()

    def write(self) -> None:
        """The whole table, every segment's rows, replacing the file in one step: a SIGKILL or a
        full disk mid-write leaves the previous table (in-place rewrites left 0 bytes, and the
        resume after that kept only its own epochs)."""
        fields: list[str] = []
        for row in self.rows:
            fields += [k for k in row if k not in fields]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\r\n")  # csv's default
        w.writeheader()
        w.writerows(self.rows)
        atomic.write_text(self.path, buf.getvalue())
