"""The one way tlbench reads a checkpoint or weights file: `torch.load(weights_only=True)` on CPU,
with every failure told apart in one paragraph: not a PyTorch file, a plain pickle (refused
unread), truncated or corrupt, or refused as unsafe (naming what it would call). torch's advice to
retry with weights_only=False is never taken nor passed on. Used by inference (ckpt=), config
validation (ckpt_path=), the checkpoint model source and the feature cache.
Why: docs/architecture.md, "Reading checkpoints and weights".
"""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from pathlib import Path

from tlbench.errors import TlbenchError

ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default format is a zip archive
LEGACY_MAGIC = b"\x80\x02"  # torch.save(_use_new_zipfile_serialization=False): pickle protocol 2
FIX = "use a checkpoint written by tlbench (a run's checkpoints/best.ckpt or last.ckpt)"


def _refuse(path: Path, key: str, problem: str, fix: str) -> TlbenchError:
    return TlbenchError(f"this file {problem}", key=key, value=str(path), fix=fix)


def _check_format(path: Path, key: str, fix: str) -> None:
    """Tell 'not a checkpoint' from 'truncated' by the first bytes, before unpickling anything.
    Only regular files are opened: reading a FIFO (or a device) would wait forever."""
    if path.exists() and not path.is_file():
        raise _refuse(
            path,
            key,
            "is not a regular file (a named pipe, socket or device; reading it could wait forever)",
            fix,
        )
    with path.open("rb") as fh:
        head = fh.read(4)
    if not head:
        raise _refuse(path, key, "is empty (0 bytes): it is truncated or corrupt", fix)
    if head.startswith(ZIP_MAGIC):
        if not zipfile.is_zipfile(path):  # the archive's directory sits at its end
            raise _refuse(path, key, "is truncated or corrupt (an incomplete zip archive)", fix)
        return
    if head.startswith(LEGACY_MAGIC):
        return
    if head.startswith(b"\x80"):
        raise _refuse(
            path,
            key,
            "is a plain Python pickle, not a PyTorch checkpoint; it was refused as unsafe "
            "(unpickling it could run code, and weights_only=True refuses it)",
            "load only files written by torch.save, e.g. a tlbench run's checkpoints",
        )
    raise _refuse(
        path,
        key,
        "is not a PyTorch checkpoint (it is neither the zip archive torch.save writes nor "
        f"torch's older pickle format; it starts with {head!r})",
        fix,
    )


def _unsafe_global(exc: BaseException) -> str | None:
    """What a weights_only refusal says the file would import ('posix.system'), if it says."""
    match = re.search(r"GLOBAL ([\w.]+)", str(exc))
    return match.group(1) if match else None


def read(path, key: str, fix: str = FIX, mmap: bool = False, map_location="cpu"):
    """`torch.load(path, map_location=..., weights_only=True)`; failures as TlbenchErrors.
    `mmap=True` maps the file instead of reading it (a few fields of a large checkpoint)."""
    import torch

    path = Path(path)
    _check_format(path, key, fix)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Detected pickle protocol N" notices
            return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        name = _unsafe_global(exc)
        if name is None:
            raise _refuse(path, key, "is corrupt: its pickled data is not readable", fix) from None
        raise _refuse(
            path,
            key,
            f"was refused as unsafe: unpickling it would import and call {name}, which could "
            "run code (it cannot be loaded safely: it needs arbitrary unpickling, which "
            "weights_only=True refuses, and tlbench never loads a file any other way)",
            "use a checkpoint you trained yourself, or re-save its state dict "
            "(torch.save(model.state_dict(), path)) in a session you trust",
        ) from None
    except Exception as exc:  # EOFError, struct.error, RuntimeError ...: the bytes are damaged
        first = (str(exc).splitlines() or [""])[0]
        detail = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
        raise _refuse(path, key, f"is truncated or corrupt ({detail})", fix) from None
