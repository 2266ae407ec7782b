"""What the feature cache extracts and what it charges: only the images a run uses (issue 24,
item 7), keyed by what changes the numbers and costed honestly when made elsewhere (issue 25,
item 4). Real `train()` runs of lenet5 on 80 digits (its random backbone is frozen and cached)."""

from pathlib import Path

import pytest
import torch

from tlbench import summary_file
from tlbench.training import feature_cache, feature_store
from tlbench.training.run import build_run, train

FAST = ["model=lenet5", "strategy=transfer", "trainer.precision=32-true"]


def _run(cfg_factory, tmp_path, name, *overrides, cache="cache"):
    return train(
        cfg_factory(
            *FAST,
            f"paths.output_dir={tmp_path / name}",
            f"paths.cache_dir={tmp_path / cache}",
            *overrides,
        )
    )


def _stored(summary) -> dict:
    return torch.load(summary.feature_cache, weights_only=True)["splits"]


def test_a_run_without_test_extracts_no_test_features_and_a_later_one_adds_them(
    cfg_factory, tmp_path
):
    dm, _ = build_run(cfg_factory(*FAST))
    sizes = {s: len(v.targets) for s, v in dm.splits.items()}
    untested = _run(cfg_factory, tmp_path, "a", "test_after_fit=false")
    assert untested.feature_extraction_images == {"train": sizes["train"], "val": sizes["val"]}
    assert set(untested.feature_extraction_seconds) == {"train", "val"}
    assert set(_stored(untested)) == {"train", "val"}
    tested = _run(cfg_factory, tmp_path, "b", "test_after_fit=true")
    assert tested.feature_cache == untested.feature_cache  # one key, the file extended
    assert tested.feature_extraction_images == {"test": sizes["test"]}
    assert not tested.feature_cache_hit and tested.best_val_acc == untested.best_val_acc
    assert set(_stored(tested)) == {"train", "val", "test"}
    # the test accuracy is the one a run extracting everything at once gets
    cold = _run(cfg_factory, tmp_path, "c", "test_after_fit=true", cache="cold")
    assert cold.feature_extraction_images == sizes
    assert tested.test_acc == pytest.approx(cold.test_acc, abs=1e-6)
    again = _run(cfg_factory, tmp_path, "d", "test_after_fit=true")
    assert again.feature_cache_hit and again.feature_extraction_images == {}
    assert again.test_acc == pytest.approx(cold.test_acc, abs=1e-6)


def test_limit_test_batches_extracts_only_those_batches_and_does_not_poison_the_cache(
    cfg_factory, tmp_path
):
    dm, _ = build_run(cfg_factory(*FAST))
    test_images = len(dm.splits["test"].targets)
    limited = _run(cfg_factory, tmp_path, "a", "trainer.limit_test_batches=2")
    assert limited.feature_extraction_images["test"] == 2 * 16  # 2 batches of 16
    assert len(_stored(limited)["test"]["y"]) == 32
    full = _run(cfg_factory, tmp_path, "b")  # needs every test image: extracts them again
    assert full.feature_extraction_images == {"test": test_images}
    assert len(_stored(full)["test"]["y"]) == test_images
    cold = _run(cfg_factory, tmp_path, "c", cache="cold")
    assert full.test_acc == pytest.approx(cold.test_acc, abs=1e-6)
    # a limited run on the full cache reads its prefix: nothing extracted
    again = _run(cfg_factory, tmp_path, "d", "trainer.limit_test_batches=2")
    assert again.feature_cache_hit and again.test_acc == pytest.approx(limited.test_acc)


def test_a_cache_made_on_other_hardware_is_not_costed_as_this_runs(cfg_factory, tmp_path):
    common = ["test_after_fit=false"]
    first = _run(cfg_factory, tmp_path, "a", *common)
    here = feature_store.made_on(torch.device("cpu"))
    assert set(first.feature_cache_made_on.values()) == {here}
    path = Path(first.feature_cache)
    stored = torch.load(path, weights_only=True)
    for entry in stored["splits"].values():  # as if extracted slowly on another machine
        entry.update(seconds=1000.0, made_on="cpu: a login node's CPU")
    torch.save(stored, path)
    elsewhere = _run(cfg_factory, tmp_path, "b", *common)
    assert elsewhere.feature_cache_hit
    assert set(elsewhere.feature_cache_made_on.values()) == {"cpu: a login node's CPU"}
    assert elsewhere.feature_extraction_seconds == {"train": 1000.0, "val": 1000.0}
    assert elsewhere.fit_seconds < 1000  # its own read time, not the stored 2,000 s
    for entry in stored["splits"].values():  # the same cost, made on this hardware: counted
        entry.update(made_on=here)
    torch.save(stored, path)
    local = _run(cfg_factory, tmp_path, "c", *common)
    assert local.feature_cache_hit and local.fit_seconds >= 2000


def test_the_key_holds_the_device_type_and_what_changes_cuda_numbers(cfg_factory, monkeypatch):
    dm, module = build_run(cfg_factory(*FAST))
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    key = feature_cache.cache_key(module, dm, "32-true", cuda)
    assert key != feature_cache.cache_key(module, dm, "32-true", cpu)
    assert feature_cache.cache_key(module, dm, "32-true") == feature_cache.cache_key(
        module, dm, "32-true", cpu
    )
    matmul, before = torch.backends.cuda.matmul, torch.backends.cuda.matmul.allow_tf32
    try:  # a property of torch's backend module: monkeypatch cannot undo it
        matmul.allow_tf32 = True  # TF32 fp32 matmuls
        tf32 = feature_cache.cache_key(module, dm, "32-true", cuda)
        matmul.allow_tf32 = False
        assert tf32 != feature_cache.cache_key(module, dm, "32-true", cuda)
    finally:
        matmul.allow_tf32 = before
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    assert feature_cache.cache_key(module, dm, "32-true", cuda) not in (key, tf32)


def test_an_error_during_extraction_fails_the_run_with_its_traceback(
    cfg_factory, tmp_path, monkeypatch
):
    """Only out-of-memory retries at a smaller batch (tests/training/test_gpu_logic.py); any
    other error inside extraction fails the run, with its traceback in summary.json."""

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(feature_cache, "_extract", broken)
    cfg = cfg_factory(*FAST, f"paths.output_dir={tmp_path / 'a'}")
    with pytest.raises(RuntimeError, match="illegal memory access"):
        train(cfg)
    summary = summary_file.read(tmp_path / "a")
    assert summary.status == "failed" and "illegal memory access" in summary.error
    assert "in broken" in summary.traceback  # where it was raised, not a one-line message
