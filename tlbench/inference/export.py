"""`python -m tlbench.export ckpt=<run dir | .ckpt> format=torchscript|onnx`.

Writes a deployable network (eval mode, fp32, contiguous NCHW input of any batch size, logits
out) and `model.json` beside it: class names, preprocessing, input/output names and the measured
difference to the checkpoint. Every export is checked against the checkpoint on sample inputs.
ONNX specifics (exporters, opsets, onnxruntime) are in tlbench.inference.onnx_export.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import nn

from tlbench import atomic
from tlbench.errors import TlbenchError, one_of, require
from tlbench.inference import checkpoint, options
from tlbench.inference.onnx_export import (
    EXPORTERS,
    INPUT_NAME,
    OUTPUT_NAME,
    check_opset,
    choose_exporter,
    export_onnx,
    run_onnx,
    written_opset,
)
from tlbench.models import outputs

log = logging.getLogger("tlbench.export")

FORMATS = {"torchscript": ".pt", "onnx": ".onnx"}
# Traced/exported with one batch size and checked with another, so a batch size frozen into
# the graph would show up as an error at export time rather than in production.
TRACE_BATCH, CHECK_BATCH = 2, 3


def deployable(loaded: checkpoint.Loaded) -> nn.Module:
    net = loaded.module.net.float().eval().to(memory_format=torch.contiguous_format)
    return outputs.Logits(net).eval()  # a plain logits tensor out, whatever the family


def sample_input(loaded: checkpoint.Loaded, batch: int, seed: int = 0) -> torch.Tensor:
    """Normalised-image-like inputs: standard normal is what mean/std normalisation aims at."""
    side = loaded.preprocess.crop_size
    return torch.randn(batch, 3, side, side, generator=torch.Generator().manual_seed(seed))


def export_torchscript(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    # Tracing (not scripting): every torchvision/timm convnet traces, far fewer script.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit deprecation and tracer notices
        traced = torch.jit.trace(model, example, check_trace=False)
    traced.save(str(path))


def run_torchscript(path: Path, x: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.load(str(path), map_location="cpu").eval()
    with torch.no_grad():
        return scripted(x)


def run_exported(path: Path, fmt: str, x: torch.Tensor) -> torch.Tensor:
    return run_torchscript(path, x) if fmt == "torchscript" else run_onnx(path, x)


def compare(reference: torch.Tensor, got: torch.Tensor, atol: float, rtol: float) -> float:
    """Max |difference|; raises when any logit is off by more than atol + rtol * |reference|."""
    diff = (got.float() - reference.float()).abs()
    worst = float(diff.max())
    if got.shape != reference.shape or bool((diff > atol + rtol * reference.abs()).any()):
        raise TlbenchError(
            f"the exported model's logits differ from the checkpoint's by up to {worst:.3g} "
            f"(shape {tuple(got.shape)} vs {tuple(reference.shape)})",
            key="atol",
            value=atol,
            fix="if the difference is acceptable, raise atol/rtol; otherwise try the other format "
            "or onnx_exporter, and report the model name to tlbench",
        )
    return worst


def check(cfg: DictConfig) -> str | None:
    """Every setting, before the checkpoint is read; returns the ONNX exporter (None: TorchScript)."""
    options.validate("export", cfg)
    require(cfg, "ckpt", example="ckpt=outputs/runs/<run dir> format=onnx")
    if str(cfg.format) not in FORMATS:
        raise one_of("format", str(cfg.format), FORMATS, what="export format")
    if str(cfg.onnx_exporter) not in EXPORTERS:  # refused whatever the format
        raise one_of("onnx_exporter", str(cfg.onnx_exporter), EXPORTERS, what="ONNX exporter")
    exporter = None
    if cfg.format == "onnx":
        exporter = choose_exporter(str(cfg.onnx_exporter))
        check_opset(cfg.opset, exporter)
    if cfg.output:  # the sidecar beside an explicit output is replaced only with overwrite=true
        options.refuse_existing(cfg, Path(str(cfg.output)).expanduser().with_suffix(".json"))
    checkpoint.resolve(cfg.ckpt)
    return exporter


def write(loaded: checkpoint.Loaded, model: nn.Module, out: Path, fmt: str, exporter, opset):
    """The export itself; a failure of torch's exporters is one paragraph naming the model."""
    example = sample_input(loaded, TRACE_BATCH)
    log.info(
        "exporting %s as %s to %s", loaded.path, fmt + (f" ({exporter})" if exporter else ""), out
    )
    try:
        if fmt == "torchscript":
            export_torchscript(model, example, out)
        else:
            export_onnx(model, example, out, exporter, opset)
    except TlbenchError:
        raise
    except Exception as exc:
        first = (str(exc).splitlines() or [""])[0]
        raise TlbenchError(
            f"{loaded.describe()['model']['name']} could not be exported as {fmt}"
            f"{f' with the {exporter} exporter' if exporter else ''} ({type(exc).__name__}: {first})",
            key="format",
            value=fmt,
            fix="try the other format"
            + (", or the other onnx_exporter (dynamo | legacy)" if fmt == "onnx" else ""),
        ) from exc


def verify(loaded: checkpoint.Loaded, model: nn.Module, out: Path, fmt: str, cfg) -> dict:
    """Run the export on fresh inputs of another batch size; a failed check removes the file."""
    x = sample_input(loaded, CHECK_BATCH, seed=1)
    with torch.no_grad():
        reference = model(x)
    try:
        max_diff = compare(reference, run_exported(out, fmt, x), cfg.atol, cfg.rtol)
    except TlbenchError:
        out.unlink(missing_ok=True)  # never leave a model behind that failed its check
        raise
    return {
        "max_abs_diff": max_diff,
        "atol": float(cfg.atol),
        "rtol": float(cfg.rtol),
        "batch": CHECK_BATCH,
    }


def sidecar(loaded: checkpoint.Loaded, out: Path, fmt: str, exporter, checked) -> dict:
    """model.json: what a deployment needs besides the network."""
    side = loaded.preprocess.crop_size
    return {
        **loaded.describe(),
        "format": fmt,
        "file": out.name,
        "onnx_exporter": exporter,
        "opset": written_opset(out) if fmt == "onnx" else None,  # as written, not as asked
        "torch_version": torch.__version__,
        "input": {
            "name": INPUT_NAME,
            "shape": ["batch", 3, side, side],
            "dtype": "float32",
            "layout": "NCHW, RGB, resized/cropped and normalised as `preprocess` says",
        },
        "output": {
            "name": OUTPUT_NAME,
            "shape": ["batch", loaded.num_classes],
            "meaning": "logits in class_names order; softmax them for probabilities",
        },
        "check": checked,
    }


def export(cfg: DictConfig) -> Path:
    exporter = check(cfg)
    fmt = str(cfg.format)
    loaded = checkpoint.load(cfg.ckpt)
    out = (
        Path(str(cfg.output)).expanduser()
        if cfg.output
        else Path(cfg.paths.output_dir) / f"model{FORMATS[fmt]}"
    )
    model = deployable(loaded)
    # Written and checked beside `out`, then renamed over it (tlbench.atomic): a failed check, a
    # kill or a full disk never leaves half a model, nor replaces a good one; what a killed
    # earlier export left goes.
    atomic.remove_orphans(out.parent)
    with atomic.replacing(out, suffix=out.suffix) as tmp:
        write(loaded, model, tmp, fmt, exporter, int(cfg.opset))
        checked = verify(loaded, model, tmp, fmt, cfg) if cfg.check else None
    info = sidecar(loaded, out, fmt, exporter, checked)
    sidecar_path = out.with_suffix(".json")
    atomic.write_text(sidecar_path, json.dumps(info, indent=2) + "\n")
    diff = (
        "not checked"
        if checked is None
        else f"max |diff| vs checkpoint {checked['max_abs_diff']:.2e}"
    )
    print(
        f"tlbench export: {info['model']['name']} -> {out} ({fmt}, {diff})\n"
        f"  sidecar: {sidecar_path} (class names, preprocessing, input/output)",
        flush=True,
    )
    return out
