"""compile / cudnn_benchmark / matmul_precision, and the input pipeline in summary.json."""

from __future__ import annotations

import pytest
import torch

from tlbench.errors import TlbenchError
from tlbench.training import device
from tlbench.training.run import build_run, train

LENET = ["model=lenet5", "strategy=scratch", "trainer.precision=32-true", "test_after_fit=false"]


def test_compile_wraps_the_network_or_only_the_head(cfg_factory, monkeypatch):
    compiled = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *a, **k: compiled.append(self))
    _, module = build_run(cfg_factory(*LENET))
    assert module.compile_network() == "net" and compiled == [module.net]
    _, module = build_run(cfg_factory("strategy=transfer", "trainer.precision=32-true"))
    module.use_cached_features(batch_size=16)
    assert module.compile_network() == "head"
    assert compiled[-1] is module.net.get_submodule(module.head_names[0])


def test_a_run_reports_its_input_pipeline_and_speed_settings(cfg_factory, monkeypatch):
    compiled = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *a, **k: compiled.append(self))
    s = train(cfg_factory(*LENET, "compile=true", "trainer.fast_dev_run=true"))
    assert s.status == "ok" and s.compiled == "net" and len(compiled) == 1
    assert s.num_workers == 0 and s.input_pipeline.startswith("uint8 batches")
    # CPU-only here: the CUDA switches are left alone and say so
    if not torch.cuda.is_available():
        assert s.cudnn_benchmark is None and s.matmul_precision is None


@pytest.mark.parametrize(
    "override,key",
    [("compile=yes", "compile"), ("cudnn_benchmark=2", "cudnn_benchmark"),
     ("matmul_precision=tf32", "matmul_precision")],
)  # fmt: skip
def test_bad_speed_settings_fail_before_any_data_is_read(cfg_factory, override, key):
    with pytest.raises(TlbenchError, match=key):
        device.check_speed_keys(cfg_factory(override))


def test_cuda_backends_are_set_only_on_cuda():
    assert device.configure_backends("cpu") == {"cudnn_benchmark": None, "matmul_precision": None}
    before = (torch.backends.cudnn.benchmark, torch.get_float32_matmul_precision())
    try:
        got = device.configure_backends("cuda", "auto", "high")
        assert got == {"cudnn_benchmark": True, "matmul_precision": "high"}
        assert torch.backends.cudnn.benchmark and torch.get_float32_matmul_precision() == "high"
        assert device.configure_backends("cuda", False, "highest")["cudnn_benchmark"] is False
    finally:
        torch.backends.cudnn.benchmark = before[0]
        torch.set_float32_matmul_precision(before[1])


@pytest.mark.slow
def test_compile_true_trains_for_real_on_cpu(cfg_factory):
    """torch.compile itself (inductor, C++ codegen on CPU): ~1 min here, hence slow."""
    s = train(cfg_factory(*LENET, "compile=true", "trainer.fast_dev_run=true"))
    assert s.status == "ok" and s.compiled == "net"
    assert s.final_train_loss is None or s.final_train_loss == s.final_train_loss
