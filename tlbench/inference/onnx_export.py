"""ONNX export (`python -m tlbench.export format=onnx`): the exporter choice, the opsets each one
writes, the export itself and running the file with onnxruntime.

Exporters (torch 2.14): the torch.export-based "dynamo" exporter is torch's default and the
maintained one; it needs `onnxscript`. The TorchScript-based "legacy" exporter is deprecated but
needs only `onnx` and exports the usual convnets (resnet18, efficientnet_lite0) with the same
results. `onnx_exporter=auto` takes dynamo when onnxscript is importable, else legacy.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from tlbench.errors import TlbenchError, one_of

EXPORTERS = ("auto", "dynamo", "legacy")
INPUT_NAME, OUTPUT_NAME = "input", "logits"  # the graph's names, in model.json too
# The opsets each ONNX exporter writes as asked (torch 2.14, measured by exporting and reading the
# file back): the dynamo exporter silently writes 18 for anything below 18, and torch.onnx supports
# up to 23; the legacy exporter refuses below 7, and torch documents it up to 20.
OPSETS = {"dynamo": (18, 23), "legacy": (7, 20)}


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


def check_opset(opset, exporter: str) -> None:
    low, high = OPSETS[exporter]
    if isinstance(opset, bool) or not isinstance(opset, int) or not low <= opset <= high:
        number = isinstance(opset, int) and not isinstance(opset, bool)
        raise TlbenchError(
            f"the {exporter} ONNX exporter does not write this opset"
            if number
            else "an ONNX opset is a version number",
            key="opset",
            value=opset,
            allowed=f"{low} to {high} with the {exporter} exporter (legacy: "
            f"{OPSETS['legacy'][0]}-{OPSETS['legacy'][1]}, dynamo: {OPSETS['dynamo'][0]}-"
            f"{OPSETS['dynamo'][1]})",
            fix=f"e.g. opset={max(low, 18)}",
        )


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
    kwargs = {"input_names": [INPUT_NAME], "output_names": [OUTPUT_NAME], "opset_version": opset}
    if exporter == "dynamo":
        kwargs |= {
            "dynamic_shapes": ({0: torch.export.Dim("batch")},),
            "external_data": False,  # one self-contained file (fine below protobuf's 2 GB)
            "verbose": False,
        }
    else:
        kwargs["dynamic_axes"] = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
    with quiet_loggers("onnxscript", "onnx_ir"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's DeprecationWarning
        torch.onnx.export(model, (example,), str(path), dynamo=exporter == "dynamo", **kwargs)


@contextmanager
def quiet_loggers(*names: str):
    """onnxscript's optimiser logs every pass at INFO into the run log: keep the log about us
    while exporting, and give the loggers their levels back afterwards."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


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


def written_opset(path: Path) -> int:
    """The default-domain opset an ONNX file declares: what model.json records."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next(int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx"))
