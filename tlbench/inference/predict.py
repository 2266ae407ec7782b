"""`python -m tlbench.predict ckpt=<run dir | .ckpt> input=<image file | folder>`.

Labels images with a trained checkpoint, using its own evaluation preprocessing, in batches, with
a progress bar. Writes `predictions.csv`: one row per file with the predicted class, its
probability and the top-k classes and probabilities. A file that cannot be read as an image gets
a row with its error instead of stopping the run.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from tlbench import atomic
from tlbench.data import images, loading, transforms
from tlbench.errors import TlbenchError, require
from tlbench.inference import checkpoint, options

log = logging.getLogger("tlbench.predict")


def find_images(input_path) -> list[Path]:
    """An image file as is; a folder scanned recursively, sorted, hidden files skipped."""
    p = Path(str(input_path)).expanduser()
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise TlbenchError(
            "no such file or directory",
            key="input",
            value=str(input_path),
            allowed="an image file or a folder of images",
            fix=f"check the path (relative paths start at {Path.cwd()})",
        )
    # The listing and extension list training's folder datasets use (symlinked folders too).
    files = [f for f in images.walk_files(p) if images.has_image_extension(f)]
    if not files:
        raise TlbenchError(
            "the folder holds no image files",
            key="input",
            value=str(input_path),
            allowed=" ".join(sorted(images.IMAGE_EXTENSIONS)) + " (any case, in any subfolder)",
            fix="point at a folder of images or at one image file",
        )
    return files


class ImageFiles(Dataset):
    def __init__(self, files: list[Path], transform) -> None:
        self.files, self.transform = files, transform
        self.read = images.ImageReader()  # training's reader: the same pixels for the same file

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        try:
            return self.transform(self.read(self.files[i])), i, ""
        except Exception as exc:  # truncated, not an image, unsupported mode ...: report, go on
            first = (str(exc).splitlines() or [""])[0]
            return None, i, f"{type(exc).__name__}: {first}".rstrip(": ")


def collate(batch):
    ok = [(x, i) for x, i, _ in batch if x is not None]
    failed = [(i, err) for x, i, err in batch if x is None]
    images = torch.stack([x for x, _ in ok]) if ok else None
    return images, [i for _, i in ok], failed


def columns(k: int) -> list[str]:
    tops = [c for j in range(1, k + 1) for c in (f"top{j}_class", f"top{j}_prob")]
    return ["file", "predicted_class", "probability", *tops, "error"]


def check(cfg: DictConfig) -> None:
    """Every setting, before the checkpoint is read or any image decoded."""
    options.validate("predict", cfg)
    require(cfg, "ckpt", "input", example="ckpt=outputs/runs/<run dir> input=photos/")
    checkpoint.resolve(cfg.ckpt)  # a wrong checkpoint path is reported before scanning folders
    if Path(str(cfg.input)).expanduser().is_file():
        readable(Path(str(cfg.input)).expanduser())


def readable(file: Path) -> None:
    """A single file that is no image is an error, not a CSV of one failure."""
    try:
        images.ImageReader()(file)
    except Exception as exc:
        first = exc.problem if isinstance(exc, TlbenchError) else str(exc)
        raise TlbenchError(
            f"cannot be read as an image: {(first.splitlines() or [''])[0]}",
            key="input",
            value=str(file),
            fix="point at an image file (JPEG, PNG, ...) or at a folder of images",
        ) from None


def _rows(probs: torch.Tensor, idx: list[int], files: list[Path], names: list[str], k: int):
    top_p, top_i = probs.topk(k, dim=1)
    for i, ps, cs in zip(idx, top_p.tolist(), top_i.tolist(), strict=True):
        tops = [v for c, p in zip(cs, ps, strict=True) for v in (names[c], f"{p:.6f}")]
        yield i, [str(files[i]), names[cs[0]], f"{ps[0]:.6f}", *tops, ""]


def _label(cfg: DictConfig, loaded, loader, files: list[Path], out: Path, k: int) -> dict:
    """Write one CSV row per file, in input order; returns the counts."""
    device = options.device(cfg.device)
    module = loaded.module.to(device)
    precision = options.inference_precision(device, cfg.precision)
    log.info("predicting %d files with %s on %s (%s)", len(files), loaded.path, device, precision)
    counts = {"ok": 0, "failed": 0}
    # Written beside `out`, renamed over it at the end (tlbench.atomic): a kill or a full disk
    # leaves the previous file whole and no half CSV; what a killed earlier write left goes.
    atomic.remove_orphans(out.parent)
    with (
        atomic.replacing(out, suffix=out.suffix) as tmp,
        tmp.open("w", newline="") as fh,
        tqdm(total=len(files), unit="img", disable=not cfg.progress_bar) as bar,
        torch.inference_mode(),
    ):
        writer = csv.writer(fh)
        writer.writerow(columns(k))
        for images, idx, failed in loader:
            rows = {}
            if images is not None:
                logits = module.logits_in(images.to(device), precision)
                probs = torch.softmax(logits.float(), dim=1).cpu()
                rows.update(_rows(probs, idx, files, loaded.class_names, k))
            for i, err in failed:
                rows[i] = [str(files[i]), "", "", *[""] * (2 * k), err]
            for i in sorted(rows):  # input order, failed files in place
                writer.writerow(rows[i])
            counts["ok"] += len(idx)
            counts["failed"] += len(failed)
            bar.update(len(idx) + len(failed))
    return counts


def predict(cfg: DictConfig) -> Path:
    check(cfg)
    files = find_images(cfg.input)
    loaded = checkpoint.load(cfg.ckpt)
    k = min(int(cfg.top_k), loaded.num_classes)
    out = (
        Path(str(cfg.output)).expanduser()
        if cfg.get("output")
        else Path(cfg.paths.output_dir) / "predictions.csv"
    )
    batch_size = int(cfg.batch_size)
    batches = -(-len(files) // batch_size)  # the one worker policy: none for a single batch
    workers = loading.worker_count(cfg.get("num_workers", "auto"), False, batches)
    loader = DataLoader(
        ImageFiles(files, transforms.build(loaded.preprocess, "none", train=False)),
        batch_size=batch_size,
        num_workers=workers,
        worker_init_fn=loading.one_thread_per_worker if workers else None,
        collate_fn=collate,
    )
    counts = _label(cfg, loaded, loader, files, out, k)
    print(
        f"tlbench predict: {counts['ok']} images labelled, {counts['failed']} unreadable "
        f"(see the error column)\n  output: {out}",
        flush=True,
    )
    if not counts["ok"]:
        raise TlbenchError(
            f"none of the {len(files)} files could be read as an image (each one's error is in "
            f"{out})",
            key="input",
            value=str(cfg.input),
            fix="point at image files (JPEG, PNG, ...)",
        )
    return out
