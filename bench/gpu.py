"""The classic experiments at full scale on one GPU, timed through tlbench's own training path.

    python bench/gpu.py                   # needs CUDA: 4 runs, ~1-5 min on an H100/H200
    python bench/gpu.py --only vgg16_transfer_cached
    python bench/gpu.py --smoke           # CPU, tiny sizes: checks the script itself (a test)

Data: synthetic CIFAR-10-sized uint8 images made in memory and written in CIFAR-10's own pickle
format (50,000 train -> 45,000 train + 5,000 val, 10,000 test; 32 px; 10 classes) so the runs go
through `data=cifar10` exactly as a user's would. Pixels are random: accuracy means nothing here,
only time does. Weights are random too (`model.weights=null`: no downloads on an air-gapped GPU
box); the arithmetic is the same as with ImageNet weights.

Runs (`experiment=cifar10_vgg16` settings: batch 32, SGD, 3 epochs, 224 px):
  vgg16_transfer         head only, classic augmentation, so features cannot be cached
  vgg16_transfer_cached  head only on cached features (augment=none, cache_features=true)
  vgg16_scratch          every layer trains
  resnet18_32px_scratch  ResNet-18 at CIFAR's own 32 px, from scratch
Each prints fit seconds (end to end, with feature extraction, as summary.json counts it),
training images/s, mean GPU utilisation sampled every 0.2 s during training steps only (not
setup, validation or checkpoint writing), the run's own peak memory, and the achieved TFLOP/s
against the bf16 matmul peak measured on this GPU first. TFLOP/s is the FLOPs of one timed phase
over that phase's seconds (`timed_images` / `timed_s` in the row): the training steps' images and
seconds (summary.json `segments`), or for the cached run the feature extraction of the train and
val images (what fit time covers; the test split's features are not part of it). FLOPs per image
are counted with torch.utils.flop_counter on one forward pass.
Targets (one H100/H200): transfer <= 30 s, cached <= 10 s, scratch <= 60 s, GPU busy
>= 80 % of fit time.
"""

from __future__ import annotations

import argparse
import contextlib
import pickle
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch

RUNS = {
    "vgg16_transfer": ["model=vgg16", "strategy=transfer", "strategy.cache_features=false"],
    "vgg16_transfer_cached": [
        "model=vgg16",
        "strategy=transfer",
        "data.augment=none",
        "strategy.cache_features=true",
    ],
    "vgg16_scratch": ["model=vgg16", "strategy=scratch"],
    "resnet18_32px_scratch": ["model=resnet18", "strategy=scratch", "data.image_size=32"],
}
NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_cifar(root: Path, train: int, test: int, seed: int = 0) -> Path:
    """Random uint8 images in CIFAR-10's python-pickle layout (what CIFAR10DataModule reads)."""
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    def dump(name: str, obj: dict) -> None:
        with open(base / name, "wb") as f:
            pickle.dump(obj, f, protocol=2)

    dump("batches.meta", {"label_names": NAMES})
    labels = np.arange(train) % 10
    for i, chunk in enumerate(np.array_split(labels, 5), start=1):
        data = rng.integers(0, 256, (len(chunk), 3072), dtype=np.uint8)
        dump(f"data_batch_{i}", {"data": data, "labels": chunk.tolist()})
    test_labels = np.arange(test) % 10
    data = rng.integers(0, 256, (test, 3072), dtype=np.uint8)
    dump("test_batch", {"data": data, "labels": test_labels.tolist()})
    return root


def gpu_utilization() -> float | None:
    """The GPU's busy % now (NVML through torch, else nvidia-smi); None where neither answers."""
    try:
        return float(torch.cuda.utilization())
    except Exception:  # no pynvml / NVML: ask nvidia-smi
        pass
    query = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]
    try:
        out = subprocess.run(query, capture_output=True, text=True, timeout=5).stdout
        return float(out.split()[0])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


class GpuSampler(L.Callback):
    """Mean GPU utilisation, polled in a thread only while training steps run: from each
    training epoch's start to its validation (or its end), so setup, feature extraction,
    validation and checkpoint writing do not dilute it."""

    def __init__(self, period: float = 0.2) -> None:
        self.period, self.samples = period, []
        self._stop, self._training = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            if self._training.is_set() and (busy := gpu_utilization()) is not None:
                self.samples.append(busy)
            self._stop.wait(self.period)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._training.set()

    def on_validation_start(self, trainer, pl_module) -> None:
        self._training.clear()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._training.clear()

    def __enter__(self):
        if torch.cuda.is_available():  # --smoke on CPU: attached, nothing to poll
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    @property
    def mean(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None


def bf16_peak_tflops(size: int = 8192, repeats: int = 20) -> float:
    """Achieved bf16 matmul TFLOP/s: the practical ceiling to compare the runs with."""
    a = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    torch.cuda.synchronize()
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e12


def forward_flops(cfg, num_classes: int = 10) -> float:
    """FLOPs of one forward pass of one image at the run's input size."""
    from torch.utils.flop_counter import FlopCounterMode

    from tlbench.models import registry

    size = int(cfg.data.image_size or 224)
    net = registry.build(cfg.model, num_classes, pretrained=False, image_size=size).net.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.zeros(1, 3, size, size))
    return float(counter.get_total_flops())


def timed_work(name: str, s: dict) -> tuple[int, float, int]:
    """(images, seconds, FLOPs per image in forward passes) of the phase whose TFLOP/s a run
    reports. Cached: extracting the train and val features (one forward each; the head's epochs
    cost ~nothing). Otherwise the training steps: 3 forwards per image when every layer trains
    (backward ~2x forward), 1 when only the head trains (its backward is negligible)."""
    if name.endswith("_cached"):
        sizes, spent = s.split_sizes or {}, s.feature_extraction_seconds or {}
        fit_splits = ("train", "val")
        return sum(sizes.get(k, 0) for k in fit_splits), sum(spent.get(k, 0) for k in fit_splits), 1
    segments = s.segments or []
    images = sum(seg.get("images") or 0 for seg in segments)
    seconds = sum(seg.get("train_seconds") or 0 for seg in segments)
    return images, seconds, 3 if "scratch" in name else 1


@contextlib.contextmanager
def watching(*callbacks):
    """Attach `callbacks` to the Trainer tlbench builds for the run (after its own: they see
    each hook last)."""
    from tlbench.training import run

    build = run.build_trainer

    def build_with_callback(*args, **kwargs):
        trainer, watch, ckpt_path = build(*args, **kwargs)
        trainer.callbacks.extend(callbacks)
        return trainer, watch, ckpt_path

    run.build_trainer = build_with_callback
    try:
        yield
    finally:
        run.build_trainer = build


def run_one(name: str, overrides: list[str], out: Path, peak: float | None) -> dict:
    from tlbench.config import compose
    from tlbench.training.run import train

    cfg = compose(
        [*overrides, f"paths.output_dir={out / name}", f"paths.cache_dir={out / 'cache'}"]
    )
    with GpuSampler() as sampler, watching(sampler):
        s = train(cfg)  # resets the CUDA peak itself: cuda_max_allocated_mb is this run's
    images, seconds, passes = timed_work(name, s)
    flops = forward_flops(cfg) * passes * images
    tflops = flops / seconds / 1e12 if seconds else None
    peak_mb = s.cuda_max_allocated_mb
    row = {
        "run": name,
        "status": s.status,
        "fit_s": s.fit_seconds,
        # checkpoint writing, which summary.json keeps out of fit_seconds (None where it does not)
        "checkpoint_s": s.checkpoint_seconds,
        "img_s": s.train_images_per_second,
        "gpu_util_%": round(sampler.mean, 1) if sampler.mean is not None else None,
        "peak_mem_gb": round(peak_mb / 1024, 2) if peak_mb is not None else None,
        "timed_images": images,
        "timed_s": round(seconds, 2),
        "tflops": round(tflops, 1) if tflops else None,
        "of_peak_%": round(100 * tflops / peak, 1) if tflops and peak else None,
        "cached": s.cached_features,
        "precision": s.precision,
    }
    print("  ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    return row


def common_overrides(root: Path, smoke: bool, epochs: int = 3, compile: bool = False) -> list[str]:
    """`experiment=cifar10_vgg16` on the synthetic CIFAR-10 at `root`, timed as fit alone."""
    common = [
        "experiment=cifar10_vgg16",
        f"data.root={root}",
        "model.weights=null",  # random weights: same arithmetic, no download
        f"trainer.max_epochs={1 if smoke else epochs}",
        "trainer.enable_progress_bar=false",
        "logger=none",
        "test_after_fit=false",  # fit time is what is compared
        f"compile={str(compile).lower()}",
    ]
    if smoke:  # tiny stand-ins with the same code path
        common += ["data.image_size=32", "trainer.accelerator=cpu"]
    return common


def run_overrides(name: str, common: list[str], smoke: bool) -> list[str]:
    """One run's overrides; --smoke swaps VGG16 and ResNet-18 for mini VGG and LeNet-5."""
    overrides = [*common, *RUNS[name]]
    if smoke:
        overrides = [o.replace("model=vgg16", "model=mini_vgg") for o in overrides]
        overrides = [o.replace("model=resnet18", "model=lenet5") for o in overrides]
    return overrides


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="CPU, tiny data and models (a test)")
    ap.add_argument("--only", nargs="+", choices=sorted(RUNS), default=sorted(RUNS))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--compile", action="store_true", help="compile=true for every run")
    ap.add_argument("--out", default=None, help="folder for data, runs and the feature cache")
    args = ap.parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        print(
            "bench/gpu.py: no CUDA GPU here (torch.cuda.is_available() is False), so there is "
            "nothing to measure: it times full-scale runs on a GPU. Run it on a machine with an "
            "NVIDIA GPU, or use --smoke to check the script on this CPU with tiny sizes.",
            file=sys.stderr,
        )
        raise SystemExit(2)
    out = Path(args.out or tempfile.mkdtemp(prefix="tlbench_gpu_"))
    train_n, test_n = (200, 50) if args.smoke else (50_000, 10_000)
    write_cifar(out / "cifar10", train_n, test_n)
    common = common_overrides(out / "cifar10", args.smoke, args.epochs, args.compile)
    peak = None
    if torch.cuda.is_available() and not args.smoke:
        peak = bf16_peak_tflops()
        print(f"# {torch.cuda.get_device_name()}: bf16 matmul peak measured {peak:.0f} TFLOP/s")
    rows = []
    for name in args.only:
        rows.append(run_one(name, run_overrides(name, common, args.smoke), out, peak))
    return rows


if __name__ == "__main__":
    main()
