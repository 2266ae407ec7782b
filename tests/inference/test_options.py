"""`tlbench.evaluate | predict | export` check their keys and values before anything is loaded:
exit 2, one paragraph naming the key, the value and the fix, and nothing on disk changed."""

from __future__ import annotations

import os

import pytest
import torch

from tests.helpers.checkpoints import snapshot
from tests.helpers.cli import run_cli
from tlbench.config import compose
from tlbench.config.preflight import compose_command
from tlbench.errors import TlbenchError
from tlbench.inference import evaluate, export, options, predict

COMMANDS = {"evaluate": evaluate, "predict": predict, "export": export}


def run_module(command: str, *args: str):
    return run_cli(*args, module=f"tlbench.{command}", timeout=300)


def _refused(command: str, tmp_path, *overrides: str, match: str) -> str:
    """The command's own check (the first thing it does, also before Hydra starts)."""
    base = [f"paths.output_dir={tmp_path / 'out'}"]
    if command == "predict":
        base.append(f"input={tmp_path}")
    before = snapshot(tmp_path)
    with pytest.raises(TlbenchError, match=match) as info:  # a wrong type: while Hydra composes
        check = COMMANDS[command].check
        check(compose_command([*base, *overrides], command, check))
    assert snapshot(tmp_path) == before and not (tmp_path / "out").exists()
    message = str(info.value)
    assert "\n" not in message and "+" not in message.split("Fix:")[-1]
    return message


# -- through the real command line: Hydra never starts, nothing is created ----------------------
@pytest.mark.parametrize(
    ("command", "args", "expected"),
    [
        ("export", ["+fromat=onnx"], "fromat='onnx': unknown key for tlbench.export.*did you mean 'format'"),
        ("export", ["fromat=onnx"], "fromat='onnx': unknown key for tlbench.export.*did you mean 'format'"),
        ("evaluate", ["run=x"], "run='x': unknown key for tlbench.evaluate.*did you mean 'ckpt'"),
        ("predict", ["qqq=1"], r"qqq=1: unknown key for tlbench.predict.*spelling \(see Allowed\)"),
        ("export", ["format=onnx", "opset=3"], "opset=3: the .* ONNX exporter does not write this opset. Allowed: "),
        ("export", ["format=onnx", "opset=abc"], "opset='abc': an ONNX opset is a version number. Allowed: "),
        ("predict", ["top_k=five"], "top_k='five': must be an integer >= 1"),
        ("predict", ["input={bad}"], "input=.*scan.png': cannot be read as an image"),
    ],
)  # fmt: skip
def test_the_command_line_is_refused_before_hydra_writes(
    tiny_run, tmp_path, command, args, expected
):
    import re

    out, bad = tmp_path / "out", tmp_path / "scan.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n cut off")  # one unreadable file: used to exit 0
    extra = [f"input={tiny_run}"] if command == "predict" else []
    args = [a.format(bad=bad) for a in args]
    before = snapshot(tiny_run)
    result = run_module(command, f"ckpt={tiny_run}", *extra, *args, f"hydra.run.dir={out}")
    assert result.returncode == 2, result.stderr
    message = result.stderr.strip()
    assert message.startswith("Error: ") and "\n" not in message, message
    assert re.search(expected, message), message
    assert "+fromat" not in message and "To append" not in message  # never Hydra's advice
    assert not out.exists() and snapshot(tiny_run) == before


# -- the checks themselves, in process -----------------------------------------------------------
def test_unknown_and_added_keys(tmp_path):
    _refused("export", tmp_path, "ckpt=x", "+fromat=onnx", match="did you mean 'format'")
    with pytest.raises(TlbenchError, match=r"\+format='onnx': tlbench.export takes no added keys"):
        options.check_command_line("export", ["ckpt=x", "+format=onnx"], export.check)
    with pytest.raises(TlbenchError) as added:
        options.check_command_line("evaluate", ["ckpt=x", "+data.foo=1"], evaluate.check)
    assert str(added.value).endswith(
        "Fix: check the keys of `data` with python -m tlbench.evaluate --cfg job."
    )
    # A text ending in an ellipsis keeps it (`Fix: set seed=...` printed as `seed=.`).
    assert str(TlbenchError("x", fix="set seed=...")) == "x. Fix: set seed=..."
    with pytest.raises(
        TlbenchError,
        match="data.bach_size=8: unknown key for tlbench.evaluate.*did you mean 'batch_size'",
    ):
        options.check_command_line(
            "evaluate", ["ckpt=x", "data=digits", "data.bach_size=8"], evaluate.check
        )


@pytest.mark.parametrize(
    ("command", "override", "match"),
    [
        ("evaluate", "batch_size=0", "batch_size=0: must be an integer >= 1 or null"),
        ("predict", "batch_size=-4", "batch_size=-4: must be an integer >= 1"),
        ("predict", "top_k=0", "top_k=0: must be an integer >= 1"),
        ("predict", "top_k=-1", "top_k=-1: must be an integer >= 1"),
        ("predict", "top_k=five", "top_k='five': must be an integer >= 1"),
        ("predict", "num_workers=-1", "num_workers=-1: must be an integer >= 0"),
        ("predict", "num_workers=1000", "num_workers=1000: this process may use .* CPUs"),
        ("predict", "progress_bar=maybe", "progress_bar='maybe': must be true or false"),
        ("export", "atol=-1", "atol=-1: must be a number >= 0"),
        ("export", "rtol=abc", "rtol='abc': must be a number >= 0"),
        ("export", "format=tflite", "format='tflite': unknown export format"),
        ("export", "onnx_exporter=fast", "onnx_exporter='fast': unknown ONNX exporter"),
        ("evaluate", "split=holdout", "split='holdout': unknown split"),
        ("evaluate", "precision=bf17", "precision='bf17': unknown precision"),
        ("evaluate", "device=tpu", "device='tpu': unknown device"),
    ],
)
def test_bad_values(tiny_run, tmp_path, command, override, match):
    message = _refused(command, tmp_path, f"ckpt={tiny_run}", override, match=match)
    assert "a bug in tlbench" not in message


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda(tiny_run, tmp_path):
    for command in COMMANDS:
        if command != "export":
            _refused(command, tmp_path, f"ckpt={tiny_run}", "device=cuda", match="0 CUDA device")


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_unsupported_opsets_and_output_directories(tiny_run, tmp_path, fmt):
    if fmt == "onnx":
        for exporter, opset, allowed in (("dynamo", 17, "18 to 23"), ("legacy", 3, "7 to 20")):
            message = _refused(
                "export", tmp_path, f"ckpt={tiny_run}", "format=onnx",
                f"onnx_exporter={exporter}", f"opset={opset}", match=f"opset={opset}: the {exporter}",
            )  # fmt: skip
            assert f"Allowed: {allowed}" in message
    (tmp_path / "taken").mkdir()
    _refused("export", tmp_path, f"ckpt={tiny_run}", f"format={fmt}", f"output={tmp_path / 'taken'}",
             match="is an existing directory")  # fmt: skip
    _refused("predict", tmp_path, f"ckpt={tiny_run}", f"output={tmp_path / 'taken'}",
             match="output=.*taken': is an existing directory")  # fmt: skip


def test_predict_on_one_unreadable_file_is_an_error(tiny_run, tmp_path):
    bad = tmp_path / "photo.jpg"
    bad.write_bytes(b"\xff\xd8\xff not really a JPEG")
    _refused("predict", tmp_path, f"ckpt={tiny_run}", f"input={bad}",
             match="input=.*photo.jpg': cannot be read as an image")  # fmt: skip


def test_model_json_records_the_opset_written(tiny_run, tmp_path):
    import onnx

    cfg = compose(
        [f"ckpt={tiny_run}", "format=onnx", "opset=20", f"paths.output_dir={tmp_path}"],
        config_name="export",
    )
    path = export.export(cfg)
    import json

    written = [o.version for o in onnx.load(str(path)).opset_import if o.domain in ("", "ai.onnx")]
    assert written == [20]
    assert json.loads(path.with_suffix(".json").read_text())["opset"] == 20


def test_predict_on_a_folder_of_unreadable_files_is_an_error(tiny_run, tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    for name in ("a.png", "b.jpg"):
        (folder / name).write_bytes(b"\x89PNG\r\n\x1a\n cut off")
    cfg = compose(
        [
            f"ckpt={tiny_run}",
            f"input={folder}",
            "progress_bar=false",
            f"paths.output_dir={tmp_path}",
        ],
        config_name="predict",
    )
    with pytest.raises(TlbenchError, match="none of the 2 files could be read as an image"):
        predict.predict(cfg)
    rows = (tmp_path / "predictions.csv").read_text().splitlines()
    assert len(rows) == 3 and all(r.rstrip().split(",")[-1] for r in rows[1:])  # errors listed


def test_a_fifo_checkpoint_is_refused_not_waited_on(tmp_path):
    """`evaluate ckpt=<a named pipe>` waited forever for a writer: only regular files are read.
    Without data= the missing record of its data is refused first: the pipe is never opened."""
    fifo = tmp_path / "best.ckpt"
    os.mkfifo(fifo)
    for data, expected in ((["data=digits"], "not a regular file"), ([], "no data= is given")):
        result = run_module("evaluate", f"ckpt={fifo}", *data, f"hydra.run.dir={tmp_path / 'out'}")
        assert result.returncode == 2, result.stderr
        assert expected in result.stderr and "Traceback" not in result.stderr
        assert not (tmp_path / "out").exists()
