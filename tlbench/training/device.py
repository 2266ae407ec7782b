"""Per-device choices: numeric precision and memory format, decided at run time, never assumed."""

from __future__ import annotations

import gc
import logging
import os
import platform
import traceback
from collections.abc import Sequence
from contextlib import nullcontext
from functools import lru_cache

import torch
from torch import nn

log = logging.getLogger("tlbench")


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when the CPU executes bf16 matmuls natively (AVX512-BF16 or AMX).

    Without native support bf16 autocast is emulated and usually *slower* than fp32, so this
    reads the CPU flags rather than asking torch whether bf16 merely works.
    """
    if platform.system() != "Linux":
        return False
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def accelerator_kind(accelerator: str) -> str:
    """'cuda', 'mps' or 'cpu': what Lightning's `accelerator` setting will actually use."""
    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return "cuda"
    if (
        accelerator in ("mps", "auto")
        and getattr(torch.backends, "mps", None)
        and torch.backends.mps.is_available()
    ):
        return "mps"
    return "cpu"


def rank_device(accelerator: str, devices=None) -> torch.device:
    """The device this process trains on, before the Trainer exists (feature extraction): under
    DDP each rank's own GPU, as Lightning assigns it -- local rank k takes the k-th of
    `trainer.devices` when that lists GPUs ([2, 3] or "2,3"), else cuda:k -- never GPU 0 for all.
    The local rank: LOCAL_RANK (Lightning's children, torchrun), or SLURM_LOCALID for srun's."""
    if accelerator_kind(accelerator) != "cuda":
        return torch.device("cpu")
    from tlbench.runtime import distributed

    env = os.environ
    local = env.get("LOCAL_RANK") or (
        env.get("SLURM_LOCALID") if distributed.launcher() == "srun" else None
    )
    local = int(local or 0)
    if isinstance(devices, str) and "," in devices:
        devices = [d for d in devices.split(",") if d.strip()]
    if isinstance(devices, Sequence) and not isinstance(devices, str) and local < len(devices):
        return torch.device("cuda", int(devices[local]))
    return torch.device("cuda", local)


def expected_ranks(trainer_cfg) -> int:
    """How many DDP ranks the Trainer will run: srun's or torchrun's task count, else the
    devices of a `ddp` strategy (Lightning re-runs the command line for each); 1 otherwise
    (ddp_spawn and friends pickle the datamodule into their workers: extracted before fit)."""
    from tlbench.runtime import distributed

    kind = distributed.launcher()
    if kind == "torchrun":
        return int(os.environ.get("WORLD_SIZE", "1") or 1)
    if kind == "srun":
        return int(os.environ["SLURM_NTASKS"])
    strategy, devices = trainer_cfg.get("strategy", "auto"), trainer_cfg.get("devices", "auto")
    cuda = accelerator_kind(trainer_cfg.get("accelerator", "auto")) == "cuda"
    if strategy != "ddp" and not (strategy == "auto" and cuda):  # auto: ddp on several GPUs
        return 1
    if isinstance(devices, str) and "," in devices:
        count = len([d for d in devices.split(",") if d.strip()])
    elif isinstance(devices, str) and not devices.lstrip("-").isdigit():  # "auto"
        count = torch.cuda.device_count() if cuda else 1
    elif isinstance(devices, int | str):
        count = int(devices)
        count = torch.cuda.device_count() if count == -1 and cuda else count
    else:  # a list of GPU indices
        count = len(devices)
    return max(1, count) * int(trainer_cfg.get("num_nodes", 1) or 1)


def cuda_has_native_bf16() -> bool:
    """bf16 in hardware (compute capability 8.0+: Ampere or newer; ROCm). torch's default also
    counts emulated bf16, so a T4 or V100 would "support" it at a fraction of fp16's speed."""
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # torch < 2.3: no such argument, and no emulation counted either
        return torch.cuda.get_device_capability() >= (8, 0)


def auto_precision(kind: str, native_bf16: bool) -> tuple[str, str]:
    """precision=auto's choice for a device kind ('cuda', 'mps', 'cpu') that does or does not
    compute bf16 natively: Lightning precision string and the reason."""
    if kind == "cuda":
        if native_bf16:
            return "bf16-mixed", "GPU computes bf16 natively (Ampere or newer)"
        return (
            "16-mixed",
            "GPU without native bf16 (pre-Ampere): fp16 mixed precision, loss scaling",
        )
    if kind == "cpu" and native_bf16:
        return "bf16-mixed", "CPU has native bf16 (avx512_bf16/amx)"
    return "32-true", f"no fast reduced precision on this {kind.upper()}"


def choose_precision(requested, accelerator: str) -> tuple[str, str]:
    """Lightning precision string and the reason; `requested` other than 'auto' is kept."""
    if str(requested) != "auto":
        return str(requested), "set in trainer.precision"
    kind = accelerator_kind(accelerator)
    native = cuda_has_native_bf16() if kind == "cuda" else kind == "cpu" and cpu_has_native_bf16()
    return auto_precision(kind, native)


def autocast(precision: str, device_type: str):
    """The autocast context for a Lightning precision string: bf16 for "bf16-*", fp16 for "16-*",
    none (plain fp32) otherwise. Feature extraction, evaluate and predict run their forward
    passes under it, so they compute in the precision training chose."""
    precision = str(precision)
    if precision.startswith("bf16"):
        return torch.autocast(device_type, dtype=torch.bfloat16)
    if precision.startswith("16"):
        return torch.autocast(device_type, dtype=torch.float16)
    return nullcontext()


def is_convolutional(net: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in net.modules())


def choose_channels_last(requested, net: nn.Module) -> bool:
    """channels_last helps convnets under mixed precision (oneDNN/cuDNN kernels); 'auto' decides."""
    if str(requested) != "auto":
        return bool(requested)
    return is_convolutional(net)


MATMUL_PRECISIONS = ("highest", "high", "medium")


def check_speed_keys(cfg) -> None:
    """`compile`, `cudnn_benchmark`, `matmul_precision` (conf/train.yaml), before any data."""
    from tlbench.errors import TlbenchError, one_of

    for key, allowed in (("compile", (True, False)), ("cudnn_benchmark", ("auto", True, False))):
        if cfg.get(key, allowed[0]) not in allowed:
            raise TlbenchError(
                "not a speed setting",
                key=key,
                value=cfg.get(key),
                allowed=", ".join(str(a).lower() for a in allowed),
                fix=f"e.g. {key}=false",
            )
    if cfg.get("matmul_precision", "high") not in MATMUL_PRECISIONS:
        raise one_of(
            "matmul_precision", cfg.get("matmul_precision"), MATMUL_PRECISIONS, what="precision"
        )


def configure_backends(kind: str, cudnn_benchmark="auto", matmul_precision="high") -> dict:
    """Process-wide CUDA kernel choices; returns what was set, for the log and summary.json.

    cudnn.benchmark: cuDNN times its convolution algorithms once per input shape and keeps the
    fastest. tlbench's inputs have one fixed size (every batch is crop x crop; only the last batch
    of an epoch is shorter: one more timing), so `auto` turns it on with CUDA.
    matmul precision "high": fp32 matmuls and convolutions may use TF32 tensor cores (Ampere or
    newer; ~10 bits of mantissa, what PyTorch's own docs recommend for training); mixed-precision
    runs do their matmuls in bf16/fp16 anyway. Both are left alone on CPU-only runs.
    """
    if kind != "cuda":
        return {"cudnn_benchmark": None, "matmul_precision": None}
    bench = True if cudnn_benchmark == "auto" else bool(cudnn_benchmark)
    torch.backends.cudnn.benchmark = bench
    torch.set_float32_matmul_precision(matmul_precision)
    torch.backends.cudnn.allow_tf32 = matmul_precision != "highest"
    return {"cudnn_benchmark": bench, "matmul_precision": matmul_precision}


def apply_speed_settings(cfg, module, datamodule) -> dict:
    """The run's speed choices, applied once the inputs are known (images or cached features):
    CUDA backends, `compile=true`, and the DataLoader workers. Returns them for summary.json."""
    kind = accelerator_kind(cfg.trainer.get("accelerator", "auto"))
    out = configure_backends(
        kind, cfg.get("cudnn_benchmark", "auto"), cfg.get("matmul_precision", "high")
    )
    out["compiled"] = module.compile_network() if cfg.get("compile", False) else None
    pixels = getattr(datamodule, "pixels", datamodule)  # cached features: the images behind them
    loader = pixels.loader_settings() if hasattr(pixels, "loader_settings") else {}
    out["num_workers"] = loader.get("num_workers", 0)
    out["input_pipeline"] = (
        "cached features on the device"
        if pixels is not datamodule
        else "uint8 batches transformed on the device"
        if getattr(pixels, "in_memory", False)
        else f"per-image decoding in {out['num_workers']} worker(s)"
    )
    log.info(
        "input: %s (%d DataLoader workers); compile=%s; cudnn.benchmark=%s; matmul precision %s",
        out["input_pipeline"],
        out["num_workers"],
        out["compiled"] or "off",
        out["cudnn_benchmark"],
        out["matmul_precision"],
    )
    return out


def reset_peak_memory() -> None:
    """Start a run's `cuda_max_allocated_mb` from zero: in a one-process sweep (basic launcher)
    the peak would otherwise be the largest of every earlier job. Uninitialised CUDA has no peak
    to forget, and initialising it here would break fork-based DDP launchers."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.reset_peak_memory_stats()


def release_memory(exc: BaseException | None = None) -> None:
    """Free a finished run's module, optimizer state and cached features before the next job of
    a sweep starts: they sit in reference cycles (module <-> trainer <-> callbacks) that only a
    collector pass frees. A failed run's traceback also holds them, through its frames' locals:
    those are cleared (the traceback still prints; it was recorded in summary.json already)."""
    if exc is not None:
        traceback.clear_frames(exc.__traceback__)
    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()  # give the freed blocks back: other processes share the GPU


def _nondeterministic_pool(m: nn.Module) -> bool:
    """CUDA has no deterministic backward for adaptive max pooling, nor for adaptive average
    pooling to anything but 1x1 (which torch computes as a mean)."""
    if isinstance(m, (nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.AdaptiveAvgPool3d)):
        return True
    if isinstance(m, nn.AdaptiveAvgPool2d):
        size = m.output_size if isinstance(m.output_size, tuple) else (m.output_size,) * 2
        return any(s != 1 for s in size)
    return False


def nondeterministic_backward(net: nn.Module, trainable: set[str]) -> list[str]:
    """Layers whose CUDA backward has no deterministic kernel and runs, because parameters
    registered before them train (torchvision's VGG and AlexNet: `avgpool`, 7x7)."""
    found, trains_before = [], False
    for name, m in net.named_modules():
        if trains_before and _nondeterministic_pool(m):
            found.append(f"{name} ({type(m).__name__})")
        own = (f"{name}.{p}" if name else p for p, _ in m.named_parameters(recurse=False))
        trains_before = trains_before or any(p in trainable for p in own)
    return found


def deterministic_setting(requested, kind: str, layers: list[str]) -> tuple[object, str | None]:
    """`trainer.deterministic` to hand Lightning, and a warning when it had to change: `true` on
    CUDA with such layers would crash at the first backward, so it becomes "warn" (every other
    kernel stays deterministic; torch warns once at these layers) rather than failing the run."""
    if requested is not True or kind != "cuda" or not layers:
        return requested, None
    return "warn", (
        f"trainer.deterministic=true: {', '.join(layers)} has no deterministic CUDA backward, so "
        "this run uses deterministic=warn (every other kernel stays deterministic) and is not "
        "bit-for-bit reproducible there. For bitwise reproducibility freeze the layers before it "
        "(e.g. strategy=transfer) or train on CPU."
    )


def deterministic_for(cfg, module) -> tuple[object, str | None]:
    """deterministic_setting for a run: its device and every parameter any phase trains."""
    from tlbench.training import strategies

    requested = cfg.trainer.get("deterministic", False)
    kind = accelerator_kind(cfg.trainer.get("accelerator", "auto"))
    if requested is not True or kind != "cuda":
        return requested, None
    trainable = set(
        strategies.plan(module.net, module.head_names, cfg.strategy, epoch=None).trainable
    )
    return deterministic_setting(requested, kind, nondeterministic_backward(module.net, trainable))
