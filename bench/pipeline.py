"""Input-pipeline throughput for in-memory data: today's per-sample path vs the batched one.

    nice -n 10 python bench/pipeline.py                 # 32, 64, 224 px; eval and classic
    python bench/pipeline.py --sizes 224 --rounds 5     # one size, more rounds

Both paths start from the same CIFAR-10-sized uint8 tensor (3 x 32 x 32, random pixels) and
end with normalised float batches ready for the network, at 32, 64 and 224 px:
- per-sample: what tlbench did before (and still does for image files): a Dataset applies the
  torchvision v2 transforms image by image in the main process, then collate stacks them;
- batched: `tlbench.data.loading.IndexBatches` slices one uint8 batch, it moves to the device
  (CUDA when there is one, else the CPU) and `tlbench.data.batched.BatchTransform` transforms
  it there -- exactly the DataModule's path (`on_after_batch_transfer`).
Rounds alternate the two paths so that load on a shared machine hits both alike; the table shows
the median images/s of the rounds and their ratio. The last line is the worst ratio at 224 px
over the two transforms: `batched/per-sample at 224 px: <ratio>x`.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import statistics
import time

import numpy as np
import torch
from torch.utils.data import DataLoader

from tlbench.data import transforms
from tlbench.data.batched import BatchTransform
from tlbench.data.loading import ImageDataset, IndexBatches, as_is
from tlbench.data.splits import Split
from tlbench.preprocess import Preprocess


def per_sample(x: torch.Tensor, y: np.ndarray, pre: Preprocess, augment: str, batch: int):
    data = ImageDataset(Split(x, y), lambda item: item, transforms.build(pre, augment, True))
    for images, _ in DataLoader(data, batch_size=batch, shuffle=True):
        yield images


def batched(x, y, pre: Preprocess, augment: str, batch: int, device: torch.device):
    transform = BatchTransform(pre, augment, True)
    loader = DataLoader(IndexBatches(x, y), batch_size=batch, shuffle=True, collate_fn=as_is)
    for images, _ in loader:
        yield transform(images.to(device, non_blocking=True))


def rate(batches, images: int, device: torch.device) -> float:
    """Images per second to produce `images` images (after one warm-up batch)."""
    it = iter(batches)
    next(it)
    start, done = time.perf_counter(), 0
    for out in it:
        done += len(out)
        if done >= images:
            break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return done / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 224])
    ap.add_argument("--augments", nargs="+", default=["none", "classic"])
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--images", type=int, default=1024, help="images timed per round and path")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda (the batched path's)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    n = max(args.images + 2 * args.batch_size, 4096)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = np.arange(n, dtype=np.int64) % 10
    print(
        f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"batched path on {device}; batch {args.batch_size}; {args.images} images x "
        f"{args.rounds} rounds; torch {torch.__version__}"
    )
    print(f"{'size':>5} {'augment':>8} {'per-sample img/s':>17} {'batched img/s':>14} {'ratio':>7}")
    at_224 = []
    for size, augment in itertools.product(args.sizes, args.augments):
        pre = Preprocess().at_size(size)
        a, b = [], []
        for _ in range(args.rounds):
            a.append(rate(per_sample(x, y, pre, augment, args.batch_size), args.images, device))
            b.append(
                rate(batched(x, y, pre, augment, args.batch_size, device), args.images, device)
            )
        ratio = statistics.median(q / p for p, q in zip(a, b, strict=True))
        if size == 224:
            at_224.append(ratio)
        print(
            f"{size:>5} {augment:>8} {statistics.median(a):>17,.0f} "
            f"{statistics.median(b):>14,.0f} {ratio:>6.1f}x",
            flush=True,
        )
    if at_224:
        print(f"batched/per-sample at 224 px: {min(at_224):.1f}x")


if __name__ == "__main__":
    main()
