"""tlbench vs a plain PyTorch loop written the way the classic tutorials write it.

Same data (digits), model, batch size, epochs and precision on both sides; each side trains and
validates every epoch. Run on a quiet machine:

    .venv/bin/python bench/compare_loops.py                # both cases
    .venv/bin/python bench/compare_loops.py --case scratch --epochs 3

It prints a Markdown table (images/s, wall time per epoch, ratio, final accuracy) for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import copy
import csv
import platform
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from tlbench.config import compose
from tlbench.training.device import autocast as device_autocast
from tlbench.training.device import choose_channels_last, choose_precision
from tlbench.training.run import build_run, train

CASES = {
    # name: (tlbench overrides, epochs)
    "transfer": (["model=efficientnet_lite0", "strategy=transfer", "data.image_size=64"], 10),
    "scratch": (["model=resnet18", "strategy=scratch", "data.image_size=32"], 5),
}


def tlbench_run(overrides: list[str], epochs: int, workdir: str) -> dict:
    cfg = compose(
        [
            *overrides,
            f"trainer.max_epochs={epochs}",
            "trainer.enable_progress_bar=false",
            "logger=none",
            "test_after_fit=false",
            f"paths.output_dir={workdir}/tlbench",
            f"paths.cache_dir={workdir}/cache",
        ]
    )
    s = train(cfg)
    with open(f"{workdir}/tlbench/metrics.csv", newline="") as f:
        epoch_seconds = [float(row["time/epoch_seconds"]) for row in csv.DictReader(f)]
    return {
        "seconds": s.fit_seconds,
        "images": s.split_sizes["train"] * epochs,
        "epoch_seconds": epoch_seconds,
        "val_acc": s.final_val_acc,
        "precision": s.precision,
        "cached": s.cached_features,
    }


def plain_run(overrides: list[str], epochs: int, workdir: str) -> dict:
    """The tutorial loop: model.train(), every image through the whole network every epoch,
    an optimizer over the trainable parameters, validation after each epoch. Only the data and
    the network come from tlbench (so both sides see identical inputs and weights)."""
    cfg = compose(
        [
            *overrides,
            f"trainer.max_epochs={epochs}",
            f"paths.output_dir={workdir}/plain",
            f"paths.cache_dir={workdir}/cache",
        ]
    )
    datamodule, module = build_run(cfg)
    model = copy.deepcopy(module.net)
    precision, _ = choose_precision("auto", "cpu")
    channels_last = choose_channels_last("auto", model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    lr = float(cfg.optimizer.lr) * (
        float(cfg.strategy.head_lr_mult) if cfg.strategy.name == "transfer" else 1.0
    )
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=float(cfg.optimizer.weight_decay))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    autocast = device_autocast(precision, "cpu")  # the one autocast helper training uses

    start = time.perf_counter()
    images = 0
    epoch_seconds = []
    for _ in range(epochs):
        epoch_start = time.perf_counter()
        model.train()
        for x, y in datamodule.batches("train"):  # transformed as tlbench trains
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            optimizer.zero_grad()
            with autocast:
                loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            images += len(y)
        scheduler.step()
        model.eval()
        correct = total = 0
        with torch.no_grad(), autocast:
            for x, y in datamodule.batches("val"):
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                correct += (model(x).argmax(1) == y).sum().item()
                total += len(y)
        epoch_seconds.append(time.perf_counter() - epoch_start)
    return {
        "seconds": time.perf_counter() - start,
        "images": images,
        "epoch_seconds": epoch_seconds,
        "val_acc": correct / total,
        "precision": precision,
        "cached": False,
    }


def steady(r: dict) -> float:
    """Median epoch time after the first (warm-up: allocator, oneDNN kernel selection) epoch."""
    return statistics.median(r["epoch_seconds"][1:] or r["epoch_seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=[*CASES, "all"], default="all")
    parser.add_argument("--epochs", type=int, default=None, help="override the case's epochs")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    rows = []
    for name in CASES if args.case == "all" else [args.case]:
        overrides, epochs = CASES[name]
        epochs = args.epochs or epochs
        with tempfile.TemporaryDirectory() as workdir:
            plain = plain_run(overrides, epochs, workdir)
            ours = tlbench_run(overrides, epochs, workdir)
        rows.append((name, epochs, plain, ours))
    print(
        f"\nmachine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}\n"
    )
    print(
        "| case | epochs | side | precision | total wall s | train images per wall-second | "
        "steady epoch s (train + val) | speed-up, total | speed-up, per epoch | final val acc |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, epochs, plain, ours in rows:
        for side, r in (("plain loop", plain), ("tlbench", ours)):
            extra = " (cached features)" if r["cached"] else ""
            print(
                f"| {name} | {epochs} | {side}{extra} | {r['precision']} | {r['seconds']:.1f} | "
                f"{r['images'] / r['seconds']:.0f} | {steady(r):.2f} | {plain['seconds'] / r['seconds']:.2f}x | "
                f"{steady(plain) / steady(r):.2f}x | {100 * r['val_acc']:.1f} % |"
            )


if __name__ == "__main__":
    main()
