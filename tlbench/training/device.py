"""Per-device choices: numeric precision and memory format, decided at run time, never assumed."""

from __future__ import annotations

import logging
import platform
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


def choose_precision(requested, accelerator: str) -> tuple[str, str]:
    """Lightning precision string and the reason; `requested` other than 'auto' is kept."""
    if str(requested) != "auto":
        return str(requested), "set in trainer.precision"
    kind = accelerator_kind(accelerator)
    if kind == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16-mixed", "GPU supports bf16 (Ampere or newer)"
        return "16-mixed", "GPU without bf16: fp16 mixed precision with loss scaling"
    if kind == "cpu" and cpu_has_native_bf16():
        return "bf16-mixed", "CPU has native bf16 (avx512_bf16/amx)"
    return "32-true", f"no fast reduced precision on this {kind.upper()}"


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
