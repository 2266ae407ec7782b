"""Per-device choices: numeric precision and memory format, decided at run time, never assumed."""

from __future__ import annotations

import platform
from contextlib import nullcontext
from functools import lru_cache

import torch
from torch import nn


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
