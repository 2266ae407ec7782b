"""`python -m tlbench.export ckpt=<run dir | .ckpt> format=torchscript|onnx`.

Writes a deployable network (eval mode, fp32, contiguous NCHW input of any batch size, logits
out) and `model.json` beside it: class names, preprocessing, input/output names and the measured
difference to the checkpoint. Every export is checked against the checkpoint on sample inputs.

ONNX exporter (torch 2.14): the torch.export-based "dynamo" exporter is torch's default and the
maintained one; it needs `onnxscript`. The TorchScript-based "legacy" exporter is deprecated but
needs only `onnx` and exports the usual convnets (resnet18, efficientnet_lite0) with the same
results. `onnx_exporter=auto` takes dynamo when onnxscript is importable, else legacy.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import warnings
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import nn

from tlbench import cli
from tlbench.errors import TlbenchError, one_of
from tlbench.inference import checkpoint

log = logging.getLogger("tlbench.export")

FORMATS = {"torchscript": ".pt", "onnx": ".onnx"}
EXPORTERS = ("auto", "dynamo", "legacy")
INPUT_NAME, OUTPUT_NAME = "input", "logits"
# Traced/exported with one batch size and checked with another, so a batch size frozen into
# the graph would show up as an error at export time rather than in production.
TRACE_BATCH, CHECK_BATCH = 2, 3


class Logits(nn.Module):
    """The bare network with a plain tensor out (inception/googlenet return tuples in some modes)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out[0] if isinstance(out, tuple) else out


def deployable(loaded: checkpoint.Loaded) -> nn.Module:
    net = loaded.module.net.float().eval().to(memory_format=torch.contiguous_format)
    return Logits(net).eval()


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


def choose_exporter(requested: str) -> str:
    if requested not in EXPORTERS:
        raise one_of("onnx_exporter", requested, EXPORTERS, what="ONNX exporter")
    have_onnxscript = importlib.util.find_spec("onnxscript") is not None
    if requested == "dynamo" and not have_onnxscript:
        raise TlbenchError(
            "the dynamo ONNX exporter needs the onnxscript package",
            key="onnx_exporter",
            value=requested,
            fix="install the export extra (pip install -e '.[export]'), or onnx_exporter=legacy",
        )
    if requested == "auto":
        return "dynamo" if have_onnxscript else "legacy"
    return requested


def export_onnx(
    model: nn.Module, example: torch.Tensor, path: Path, exporter: str, opset: int
) -> None:
    if importlib.util.find_spec("onnx") is None:
        raise TlbenchError(
            "ONNX export needs the onnx package",
            key="format",
            value="onnx",
            fix="install the export extra (pip install -e '.[export]'), or format=torchscript",
        )
    # onnxscript's optimiser logs every pass at INFO into the run log: keep the log about us.
    for name in ("onnxscript", "onnx_ir"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's DeprecationWarning
        if exporter == "dynamo":
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                opset_version=opset,
                external_data=False,  # one self-contained file (fine below protobuf's 2 GB)
                verbose=False,
            )
        else:
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=False,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                opset_version=opset,
            )


def run_onnx(path: Path, x: torch.Tensor) -> torch.Tensor:
    try:
        import onnxruntime as ort
    except ImportError:
        raise TlbenchError(
            "checking the ONNX export needs onnxruntime",
            key="check",
            value=True,
            fix="install the export extra (pip install -e '.[export]'), or check=false to skip the check",
        ) from None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0])


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
            fix="report this as a bug with the model name; try the other format or onnx_exporter",
        )
    return worst


def export(cfg: DictConfig) -> Path:
    cli.require(cfg, "ckpt", example="ckpt=outputs/runs/<run dir> format=onnx")
    fmt = str(cfg.format)
    if fmt not in FORMATS:
        raise one_of("format", fmt, FORMATS, what="export format")
    exporter = choose_exporter(str(cfg.get("onnx_exporter", "auto"))) if fmt == "onnx" else None
    loaded = checkpoint.load(cfg.ckpt)
    out = (
        Path(cfg.output)
        if cfg.get("output")
        else Path(cfg.paths.output_dir) / f"model{FORMATS[fmt]}"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    model = deployable(loaded)
    example = sample_input(loaded, TRACE_BATCH)
    log.info(
        "exporting %s as %s to %s", loaded.path, fmt + (f" ({exporter})" if exporter else ""), out
    )
    try:
        if fmt == "torchscript":
            export_torchscript(model, example, out)
        else:
            export_onnx(model, example, out, exporter, int(cfg.opset))
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

    max_diff = None
    if cfg.get("check", True):
        x = sample_input(loaded, CHECK_BATCH, seed=1)
        with torch.no_grad():
            reference = model(x)
        try:
            max_diff = compare(reference, run_exported(out, fmt, x), cfg.atol, cfg.rtol)
        except TlbenchError:
            out.unlink(missing_ok=True)  # never leave a model behind that failed its check
            raise
    side = loaded.preprocess.crop_size
    sidecar = {
        **loaded.describe(),
        "format": fmt,
        "file": out.name,
        "onnx_exporter": exporter,
        "opset": int(cfg.opset) if fmt == "onnx" else None,
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
        "check": {
            "max_abs_diff": max_diff,
            "atol": float(cfg.atol),
            "rtol": float(cfg.rtol),
            "batch": CHECK_BATCH,
        }
        if max_diff is not None
        else None,
    }
    sidecar_path = out.with_suffix(".json")
    sidecar_path.write_text(json.dumps(sidecar, indent=2) + "\n")
    checked = "not checked" if max_diff is None else f"max |diff| vs checkpoint {max_diff:.2e}"
    print(
        f"tlbench export: {sidecar['model']['name']} -> {out} ({fmt}, {checked})\n"
        f"  sidecar: {sidecar_path} (class names, preprocessing, input/output)",
        flush=True,
    )
    return out


def main() -> None:
    cli.main("export", export)


if __name__ == "__main__":
    main()
