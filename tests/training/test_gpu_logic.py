"""What tlbench decides for a CUDA device, checked on CPU with the device's answers faked:
precision=auto on GPUs with and without native bf16, deterministic mode with layers that have no
deterministic CUDA backward, the peak-memory reset, and a finished run freeing its module."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
from torch import nn

from tlbench.training import device, feature_cache, run
from tlbench.training.job import run_job


def _fake_gpu(monkeypatch, capability: tuple[int, int]) -> None:
    """A CUDA device of this compute capability, as torch.cuda.is_bf16_supported reads it;
    bf16 *emulation* works on it (as on a T4 or V100)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: capability)
    props = type("Props", (), {"major": capability[0], "minor": capability[1]})()
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda *a: props)
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "_check_bf16_tensor_supported", lambda *a: True, raising=False)


@pytest.mark.parametrize(
    "capability,expected",
    [((7, 5), "16-mixed"), ((7, 0), "16-mixed"), ((8, 0), "bf16-mixed"), ((9, 0), "bf16-mixed")],
)
def test_auto_precision_uses_bf16_only_where_the_gpu_computes_it(monkeypatch, capability, expected):
    _fake_gpu(monkeypatch, capability)
    precision, why = device.choose_precision("auto", "gpu")
    assert precision == expected, why
    assert device.choose_precision("32-true", "gpu")[0] == "32-true"  # an explicit choice stays


def test_auto_precision_is_a_function_of_device_kind_and_native_bf16():
    assert device.auto_precision("cuda", True)[0] == "bf16-mixed"
    assert device.auto_precision("cuda", False)[0] == "16-mixed"
    assert device.auto_precision("cpu", True)[0] == "bf16-mixed"
    assert device.auto_precision("cpu", False)[0] == "32-true"
    assert device.auto_precision("mps", False)[0] == "32-true"


def _net() -> nn.Sequential:  # VGG's shape: convolutions, adaptive pool to 7x7, classifier
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d((7, 7)), nn.Flatten(),
        nn.Linear(4 * 49, 10),
    )  # fmt: skip


def test_deterministic_mode_falls_back_to_warn_for_pools_without_a_cuda_kernel():
    net = _net()
    everything = {n for n, _ in net.named_parameters()}
    layers = device.nondeterministic_backward(net, everything)
    assert layers == ["2 (AdaptiveAvgPool2d)"]
    value, warning = device.deterministic_setting(True, "cuda", layers)
    assert value == "warn"
    assert "trainer.deterministic=true" in warning and "2 (AdaptiveAvgPool2d)" in warning
    assert "strategy=transfer" in warning  # the fix
    # the same request on CPU, or with nothing trainable before the pool, is kept as it is
    assert device.deterministic_setting(True, "cpu", layers) == (True, None)
    assert device.nondeterministic_backward(net, {"4.weight", "4.bias"}) == []
    assert device.deterministic_setting(False, "cuda", layers) == (False, None)
    # a pool to 1x1 is a mean (ResNet's): deterministic on CUDA
    net[2] = nn.AdaptiveAvgPool2d(1)
    assert device.nondeterministic_backward(net, everything) == []
    net[2] = nn.AdaptiveMaxPool2d(1)
    assert device.nondeterministic_backward(net, everything) == ["2 (AdaptiveMaxPool2d)"]


@pytest.mark.parametrize("strategy,expected", [("scratch", "warn"), ("transfer", True)])
def test_a_cuda_run_with_deterministic_true_knows_its_trainable_layers(
    cfg_factory, monkeypatch, strategy, expected
):
    cfg = cfg_factory("model=mini_vgg", f"strategy={strategy}", "trainer.deterministic=true")
    _, module = run.build_run(cfg)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the run's device: CUDA
    value, warning = device.deterministic_for(cfg, module)
    assert value == expected
    assert (warning is not None) == (expected == "warn")


def test_peak_memory_is_reset_only_where_cuda_has_one(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda *a: calls.append(a))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    device.reset_peak_memory()  # not initialised: no peak yet, and no CUDA init before a fork
    assert calls == []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    device.reset_peak_memory()
    assert calls == [()]


@pytest.mark.parametrize("fail", [False, True])
def test_a_finished_job_leaves_no_module_alive(cfg_factory, monkeypatch, fail):
    """As a one-process sweep runs jobs: without a collector pass, the module must be gone when
    the job returns (it held weights, optimizer state and features on the GPU)."""
    refs = []
    build = run.build_run

    def build_and_watch(cfg):
        datamodule, module = build(cfg)
        refs.append(weakref.ref(module))
        if fail:  # a bug in the step: the run fails with its traceback
            module.training_step = lambda *a, **k: 1 / 0
        return datamodule, module

    monkeypatch.setattr(run, "build_run", build_and_watch)
    cfg = cfg_factory("model=lenet5", "strategy=scratch", "trainer.fast_dev_run=true")
    gc.collect()
    gc.disable()  # only the run itself may collect
    try:
        if fail:
            with pytest.raises(ZeroDivisionError):
                run_job(cfg)
        else:
            assert run_job(cfg).status == "ok"
        assert refs and refs[0]() is None
    finally:
        gc.enable()


@pytest.mark.parametrize("oom", [False, True])
def test_only_out_of_memory_retries_feature_extraction_at_a_smaller_batch(
    cfg_factory, tmp_path, oom
):
    datamodule, module = run.build_run(
        cfg_factory("strategy=transfer", "trainer.precision=32-true")
    )
    sizes, batches = [], datamodule.batches

    def first_batch_fails(split, device, train=False, batch_size=None):
        sizes.append(batch_size)
        if len(sizes) == 1:
            error = torch.cuda.OutOfMemoryError if oom else RuntimeError
            raise error("CUDA out of memory" if oom else "CUDA error: an illegal memory access")
        return batches(split, device, train=train, batch_size=batch_size)

    datamodule.batches = first_batch_fails
    cpu = torch.device("cpu")
    if oom:  # the same split again at half the batch, then caching goes on
        cached, _, path = feature_cache.prepare(module, datamodule, tmp_path, "32-true", cpu)
        assert cached is not None and path.endswith(".pt") and sizes[:2] == [256, 128]
    else:  # anything else fails the run with its traceback: no retry, no silent uncached run
        with pytest.raises(RuntimeError, match="illegal memory access"):
            feature_cache.prepare(module, datamodule, tmp_path, "32-true", cpu)
        assert sizes == [256]
