"""Training-step throughput on this CPU in fp32 and bf16 autocast, with and without channels_last.

    python bench/cpu_precision.py                          # Lite0 at 48 px, mini_vgg at 32 px
    python bench/cpu_precision.py --sizes 48 224 --batch 32

`trainer.precision=auto` picks bf16-mixed on a CPU with native bf16 (AVX512-BF16/AMX). This
measures whether that pays for a given network and input size: one training step (forward,
backward, AdamW step) on random inputs, 5 warm-up steps (oneDNN builds its kernels on the first
steps of each shape and format) and 12 timed ones, every setting twice, interleaved, so a busy
machine slows all settings alike. Prints img/s for each round; quote ratios, not absolute rates.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from tlbench.models import efficientnet_lite, small

SETTINGS = [(False, False), (False, True), (True, False), (True, True)]  # (bf16, channels_last)


def rates(net: nn.Module, size: int, batch: int, rounds: int = 2) -> dict[tuple, list[float]]:
    net.train()
    opt = torch.optim.AdamW(net.parameters(), 1e-3)
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, 10, (batch,))

    def step(bf16: bool, channels_last: bool) -> None:
        xx = x.contiguous(memory_format=torch.channels_last) if channels_last else x
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = nn.functional.cross_entropy(net(xx)[:, :10].float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    out: dict[tuple, list[float]] = {}
    for _ in range(rounds):
        for bf16, channels_last in SETTINGS:
            fmt = torch.channels_last if channels_last else torch.contiguous_format
            net.to(memory_format=fmt)
            for _ in range(5):
                step(bf16, channels_last)
            start, n = time.perf_counter(), 12
            for _ in range(n):
                step(bf16, channels_last)
            out.setdefault((bf16, channels_last), []).append(
                batch * n / (time.perf_counter() - start)
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[48], help="Lite0 input sides")
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    torch.manual_seed(0)
    nets = [
        (f"efficientnet_lite0 {s} px", efficientnet_lite.build("efficientnet_lite0", True), s)
        for s in args.sizes
    ]
    nets.append(("mini_vgg 32 px", small.mini_vgg(False), 32))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}")
    for name, net, size in nets:
        for (bf16, cl), r in rates(net, size, args.batch).items():
            label = f"{'bf16' if bf16 else 'fp32'}{' + channels_last' if cl else ''}"
            print(f"{name:26} {label:22} " + " / ".join(f"{v:.0f}" for v in r) + " img/s")


if __name__ == "__main__":
    main()
