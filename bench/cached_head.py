"""Cached-feature head training: tlbench's path (a Lightning Trainer over `CachedFeatures`, the
head trained slice by slice) vs a plain PyTorch loop doing the same optimizer steps.

    python bench/cached_head.py                      # 50,000 x 4,096 features, 10 epochs
    python bench/cached_head.py --n 5000 --epochs 2  # quicker

Random features stand in for a VGG16 backbone's 4,096-wide head inputs (the arithmetic and the
number of steps are what matter, not the values). Prints seconds and steps/s for both, and the
ratio on its last line.
"""

from __future__ import annotations

import argparse
import time

import lightning as L
import torch
from torch import nn

from tlbench.config import compose
from tlbench.training.cached_features import CachedFeatures
from tlbench.training.run import build_run


def tlbench_fit(n: int, width: int, epochs: int, batch: int) -> tuple[float, int]:
    cfg = compose(
        [
            "model=lenet5",
            "strategy=transfer",
            "model.weights=null",
            f"data.batch_size={batch}",
            "data.image_size=32",
            "paths.output_dir=/tmp/tlbench-bench-cached",
        ]
    )
    datamodule, module = build_run(cfg)
    head = module.head_names[0]
    module.net.set_submodule(head, nn.Linear(width, datamodule.num_classes))
    module.configure_optimizers()  # parameters changed: the optimizer is rebuilt in fit anyway
    g = torch.Generator().manual_seed(0)
    feats = {
        s: (torch.randn(m, width, generator=g), torch.randint(0, 10, (m,), generator=g))
        for s, m in (("train", n), ("val", n // 10), ("test", 1))
    }
    cached = CachedFeatures(datamodule, feats)
    module.use_cached_features(batch)
    trainer = L.Trainer(
        max_epochs=epochs,
        precision="32-true",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    start = time.perf_counter()
    trainer.fit(module, datamodule=cached)
    return time.perf_counter() - start, trainer.global_step


def plain_fit(n: int, width: int, epochs: int, batch: int) -> tuple[float, int]:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, width, generator=g), torch.randint(0, 10, (n,), generator=g)
    head = nn.Linear(width, 10)
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3)
    steps, start = 0, time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(n)
        for i in range(0, n, batch):
            idx = order[i : i + batch]
            loss = nn.functional.cross_entropy(head(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
    return time.perf_counter() - start, steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=50_000)
    p.add_argument("--width", type=int, default=4096)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    t_plain, s_plain = plain_fit(a.n, a.width, a.epochs, a.batch)
    t_tl, s_tl = tlbench_fit(a.n, a.width, a.epochs, a.batch)
    print(f"plain loop: {t_plain:.1f} s, {s_plain} steps ({s_plain / t_plain:.0f} steps/s)")
    print(
        f"tlbench   : {t_tl:.1f} s, {s_tl} steps ({s_tl / t_tl:.0f} steps/s), validation included"
    )
    print(f"tlbench/plain time: {t_tl / t_plain:.2f}x")


if __name__ == "__main__":
    main()
