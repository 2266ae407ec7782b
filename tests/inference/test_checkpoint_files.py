"""Reading checkpoints safely (tlbench.inference.checkpoint.read/load): every broken or hostile file
is one paragraph saying what it is, never torch's advice to retry with weights_only=False, and
nothing in a file is ever executed."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import pytest
import torch

from tests.helpers import checkpoints as H
from tlbench.config import REPO_ROOT, compose
from tlbench.errors import TlbenchError
from tlbench.inference import checkpoint


def _refused(path, match: str) -> str:
    before = H.snapshot(path.parent)
    with pytest.raises(TlbenchError, match=match) as info:
        checkpoint.load(path)
    message = str(info.value)
    assert "weights_only=False" not in message and "Traceback" not in message
    assert message.startswith(f"ckpt='{path}'") and "\n" not in message
    assert H.snapshot(path.parent) == before  # nothing written, nothing changed
    return message


def test_a_tiny_run_loads(tiny_run):
    loaded = checkpoint.load(tiny_run)
    assert loaded.path == tiny_run / "checkpoints" / "best.ckpt"
    assert loaded.class_names == ["0", "1", "2"] and loaded.preprocess.crop_size == 32
    assert not loaded.module.training


def test_random_bytes_are_not_a_pytorch_checkpoint(tmp_path):
    _refused(H.random_bytes(tmp_path / "random.ckpt"), "not a PyTorch checkpoint")
    (tmp_path / "empty.ckpt").write_bytes(b"")
    _refused(tmp_path / "empty.ckpt", r"empty \(0 bytes\).*truncated or corrupt")


@pytest.mark.parametrize("fraction", [0.3, 0.999])
def test_a_truncated_checkpoint_is_truncated_not_unsafe(tiny_run, tmp_path, fraction):
    best = tiny_run / "checkpoints" / "best.ckpt"
    message = _refused(H.truncated(best, tmp_path / "cut.ckpt", fraction), "truncated or corrupt")
    assert "unsafe" not in message and "unpickling" not in message


def test_a_checkpoint_with_a_corrupt_pickle_is_corrupt(tiny_run, tmp_path):
    best = tiny_run / "checkpoints" / "best.ckpt"
    _refused(H.corrupt_pickle(best, tmp_path / "bad.ckpt"), "truncated or corrupt")


def test_a_malicious_checkpoint_is_refused_as_unsafe_and_never_runs(tmp_path):
    marker = tmp_path / "marker"
    message = _refused(H.malicious(tmp_path / "evil.ckpt", marker), "refused as unsafe")
    assert "system" in message and "weights_only=True" in message
    plain = tmp_path / "plain.ckpt"  # the same payload as a bare pickle
    plain.write_bytes(pickle.dumps({"payload": H.RunsCode(marker)}))
    _refused(plain, "plain Python pickle.*refused as unsafe")
    assert not marker.exists()


def test_a_checkpoint_of_another_architecture_names_both(tiny_run, tmp_path):
    obj = torch.load(tiny_run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    obj["state_dict"] = {"net.features.0.weight": torch.zeros(8, 3, 3, 3)}  # not a LeNet-5
    forged = tmp_path / "forged.ckpt"
    torch.save(obj, forged)
    _refused(forged, r"weights of another architecture than the lenet5 \(tlbench\)")

    mini_vgg = dict(compose(["model=mini_vgg"]).model)
    with pytest.raises(TlbenchError) as info:
        checkpoint.check_architecture(tiny_run, mini_vgg, key="ckpt_path")
    message = str(info.value)
    assert "holds a lenet5 (tlbench), but this run builds a mini_vgg (tlbench)" in message
    assert "model=lenet5" in message
    checkpoint.check_architecture(tiny_run, dict(compose(["model=lenet5"]).model))  # same: fine


def test_a_pytorch_file_without_hyper_parameters_is_not_a_tlbench_checkpoint(tmp_path):
    path = tmp_path / "weights.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    _refused(path, "not a tlbench checkpoint")


def test_evaluate_refuses_a_hostile_checkpoint_before_hydra_writes_anything(tmp_path):
    marker, out = tmp_path / "marker", tmp_path / "out"
    evil = H.malicious(tmp_path / "evil.ckpt", marker)
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tlbench.evaluate",
            f"ckpt={evil}",
            "data=digits",
            f"hydra.run.dir={out}",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    assert "refused as unsafe" in result.stderr and "weights_only=False" not in result.stderr
    assert "Traceback" not in result.stderr
    assert not marker.exists() and not out.exists()


def test_training_ckpt_path_is_read_safely_before_training(tiny_run, tmp_path):
    """`python -m tlbench ckpt_path=...` goes through the same reader, in config validation."""
    from tlbench.config import values

    best = tiny_run / "checkpoints" / "best.ckpt"
    cases = [
        (H.random_bytes(tmp_path / "random.ckpt"), "model=lenet5", "not a PyTorch checkpoint"),
        (H.malicious(tmp_path / "evil.ckpt", tmp_path / "marker"), "model=lenet5", "unsafe"),
        (best, "model=mini_vgg", "holds a lenet5 .*, but this run builds a mini_vgg"),
    ]
    for path, model, match in cases:
        cfg = compose([model, f"ckpt_path={path}", f"paths.output_dir={tmp_path / 'run'}"])
        with pytest.raises(TlbenchError, match=match) as info:
            values.check_top_level(cfg)
        assert str(info.value).startswith("ckpt_path=") and "weights_only=False" not in str(
            info.value
        )
    values.check_top_level(compose(["model=lenet5", f"ckpt_path={best}"]))  # the right one: fine
    assert not (tmp_path / "marker").exists() and not (tmp_path / "run").exists()


def test_model_weights_files_go_through_the_same_reader(tiny_run, tmp_path):
    """`model.weights=<file>`: a truncated file is truncated, not "needs arbitrary unpickling"."""
    from tlbench.models import checkpoint_source

    cut = H.truncated(tiny_run / "checkpoints" / "best.ckpt", tmp_path / "cut.pth", 0.6)
    with pytest.raises(TlbenchError, match="model.weights=.*truncated or corrupt") as info:
        checkpoint_source.read(cut)
    assert "unpickling" not in str(info.value) and "unsafe" not in str(info.value)
    with pytest.raises(TlbenchError, match="not a PyTorch checkpoint"):
        checkpoint_source.read(H.random_bytes(tmp_path / "random.pth"))
    marker = tmp_path / "marker"
    with pytest.raises(TlbenchError, match="refused as unsafe.*system"):
        checkpoint_source.read(H.malicious(tmp_path / "evil.pth", marker))
    assert not marker.exists()
    assert "state_dict" in checkpoint_source.read(tiny_run)  # a run dir: its best.ckpt
