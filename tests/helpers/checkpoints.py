"""Tiny trained checkpoints and broken or hostile checkpoint files, for the tests of everything
that reads checkpoints (tlbench.inference, resume, model.weights=)."""

from __future__ import annotations

import os
import random
import zipfile
from pathlib import Path

import torch

from tlbench.config import compose

# The smallest real run: LeNet-5 from scratch on 3 digit classes at 32 px, 1 epoch (~3 s here).
TINY_RUN = [
    "model=lenet5",
    "strategy=scratch",
    "data.classes=[0,1,2]",
    "data.samples_per_class=8",
    "data.image_size=32",
    "data.batch_size=16",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "logger=none",
    "test_after_fit=false",
]


def train_tiny(run_dir: Path, *overrides: str) -> dict:
    """Train a tiny run into `run_dir`; returns its summary (checkpoints/best.ckpt exists)."""
    from tlbench.training.run import train

    cfg = compose([*TINY_RUN, f"paths.output_dir={run_dir}", *overrides])
    result = train(cfg)
    summary = result[0] if isinstance(result, tuple) else result  # train(cfg) -> (summary, objects)
    assert summary.status == "ok", summary
    return summary


class RunsCode:
    """Unpickling this calls os.system: a marker file appears if a loader ever executes it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def malicious(path: Path, marker: Path) -> Path:
    """A torch.save checkpoint (zip format) whose unpickling would create `marker`."""
    torch.save({"state_dict": {}, "hyper_parameters": {}, "payload": RunsCode(marker)}, path)
    return path


def random_bytes(path: Path, size: int = 4096) -> Path:
    """Noise, the same every time: os.urandom began with pickle's 0x80 about once in 150 runs,
    and such a file is rightly refused as a pickle instead of as noise."""
    path.write_bytes(random.Random(0).randbytes(size))  # begins b"\xcd\x07"
    return path


def truncated(source: Path, path: Path, fraction: float = 0.5) -> Path:
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def corrupt_pickle(source: Path, path: Path) -> Path:
    """A valid zip archive whose data.pkl is cut in half."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(path, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            zout.writestr(name, data[: len(data) // 2] if name.endswith("data.pkl") else data)
    return path


def snapshot(*roots: Path) -> dict[str, bytes]:
    """Every file under `roots` with its bytes: compare before and after to show nothing changed."""
    out = {}
    for root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        out.update({str(p): p.read_bytes() for p in files})
    return out
