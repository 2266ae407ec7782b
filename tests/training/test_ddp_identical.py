"""One model across DDP ranks (issue #23, item 4): after training, every rank holds bit-identical
parameters for every strategy, and the validation confusion matrix counts every rank's shard.

Real `python -m tlbench trainer=ddp_cpu` runs: 2 CPU ranks over gloo (Lightning re-runs the command
line for rank 1). Each rank writes `param_digest.rank<k>.json` at the end of fit
(tlbench.training.callbacks.ParamDigest, added with `+callbacks.param_digest=...`), and the test
compares them. Lenet5 on 80 digits, 1-2 epochs: every DDP step counts, so a single step that is not
averaged over the ranks shows as a differing digest.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import torch

from tests.helpers.cli import TINY, run_cli
from tlbench import summary_file
from tlbench.config import compose
from tlbench.training import feature_cache
from tlbench.training.device import rank_device
from tlbench.training.run import build_run

DDP = [
    *TINY,  # 80 training images at 32 px, batch 16: each rank trains on 40 (3 steps an epoch)
    "model=lenet5",
    "trainer=ddp_cpu",
    "trainer.precision=32-true",
    "test_after_fit=false",
    "data.num_workers=0",
    "data.val_fraction=0.0056",  # exactly one validation image per class (10)
]
VAL_IMAGES = 10


def ddp_run(tmp_path: Path, *overrides: str) -> tuple[dict, dict[int, dict]]:
    """A 2-rank run; returns its summary and each rank's parameter digest."""
    run, digests = tmp_path / "run", tmp_path / "digests"
    done = run_cli(
        *DDP,
        f"hydra.run.dir={run}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        "+callbacks.param_digest._target_=tlbench.training.callbacks.ParamDigest",
        f"+callbacks.param_digest.out_dir={digests}",
        *overrides,
        env={"OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "MEMBER: 2/2" in done.stdout + done.stderr  # both ranks joined
    summary = summary_file.read(run)
    assert summary.status == "ok", summary.error
    ranks = {}
    for path in sorted(digests.glob("param_digest.rank*.json")):
        record = json.loads(path.read_text())
        ranks[record["rank"]] = record
    assert sorted(ranks) == [0, 1] and ranks[0]["world_size"] == 2
    return summary, ranks


def assert_identical(ranks: dict[int, dict]) -> None:
    differ = [n for n, d in ranks[0]["params"].items() if ranks[1]["params"].get(n) != d]
    assert not differ, f"rank 1's parameters differ from rank 0's: {differ}"
    assert ranks[0]["all"] == ranks[1]["all"]


def test_cached_transfer_trains_one_head(tmp_path):
    """Cached features: several optimizer steps per Lightning step, each averaged over ranks."""
    summary, ranks = ddp_run(tmp_path, "strategy=transfer", "strategy.cache_features=true")
    assert summary.cached_features is True, summary.cache_reason
    assert_identical(ranks)


def test_lp_ft_after_its_switch(tmp_path):
    """The backbone unfreezes at epoch 1, after DDP wrapped the model: it trains as one too."""
    summary, ranks = ddp_run(
        tmp_path,
        "strategy=lp_ft",
        "strategy.schedule=[{epoch: 1, trainable: [all]}]",
        "trainer.max_epochs=2",
    )
    phases = summary.trainable_params_by_phase
    assert [p["epoch"] for p in phases] == [0, 1] and summary.epochs == 2
    assert_identical(ranks)


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides",
    [
        ["strategy=finetune"],
        ["strategy=partial", "strategy.last_n_stages=1"],
        ["strategy=l2sp"],
        [
            "strategy=gradual",
            "strategy.schedule=[{epoch: 1, last_n_stages: 1}]",
            "trainer.max_epochs=2",
        ],
    ],
    ids=["finetune", "partial", "l2sp", "gradual"],
)
def test_every_strategy_trains_one_model(tmp_path, overrides):
    summary, ranks = ddp_run(tmp_path, *overrides)
    if "strategy=gradual" in overrides:
        assert len(summary.trainable_params_by_phase) == 2 and summary.epochs == 2
    assert_identical(ranks)


@pytest.mark.slow  # 10-40 s of subprocesses; make test-full runs it
def test_val_confusion_matrix_counts_every_rank(tmp_path):
    """One validation image per class, 5 on each rank: the per-class accuracies come from the
    confusion matrix summed over ranks, so all 10 classes have one (rank 0's shard alone has 5)
    and, one image each, their mean is the accuracy over all 10 images."""
    ddp_run(tmp_path, "strategy=scratch")
    with open(tmp_path / "run" / "metrics.csv", newline="") as f:
        row = list(csv.DictReader(f))[-1]
    per_class = [float(v) for k, v in row.items() if k.startswith("val/acc_class/") and v != ""]
    assert len(per_class) == VAL_IMAGES, sorted(row)
    assert sum(per_class) / VAL_IMAGES == pytest.approx(float(row["val/acc"]))


def test_features_are_extracted_on_the_ranks_own_gpu(monkeypatch):
    """The device feature extraction uses before the Trainer exists: local rank k's GPU, as
    Lightning assigns it (the k-th of `trainer.devices` when that lists GPUs), never GPU 0 for
    every rank. Only the CUDA check is faked: the mapping itself needs no GPU."""
    for key in ("LOCAL_RANK", "SLURM_LOCALID", "SLURM_NTASKS", "SLURM_PROCID", "RANK"):
        monkeypatch.delenv(key, raising=False)
    assert rank_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert rank_device("gpu", 2) == torch.device("cuda", 0)  # rank 0 (no LOCAL_RANK)
    monkeypatch.setenv("LOCAL_RANK", "1")  # Lightning's child, torchrun
    assert rank_device("gpu", 2) == torch.device("cuda", 1)
    assert rank_device("auto", [2, 3]) == torch.device("cuda", 3)
    assert rank_device("cuda", "4,5") == torch.device("cuda", 5)
    monkeypatch.delenv("LOCAL_RANK")
    monkeypatch.setenv("SLURM_NTASKS", "2")  # srun's second task
    monkeypatch.setenv("SLURM_PROCID", "1")
    monkeypatch.setenv("SLURM_LOCALID", "1")
    monkeypatch.setenv("SLURM_JOB_NAME", "python")
    assert rank_device("gpu", 2) == torch.device("cuda", 1)


@pytest.mark.slow  # 10-40 s of subprocesses; make test-full runs it
def test_ranks_extract_their_shards_into_the_one_cache(tmp_path):
    """Cached features under DDP: each rank extracts only its half of every split (its log
    line), the cache rank 0 writes holds every image in order -- what one process extracts from
    the same data -- and both ranks then train one head on the full feature tensors."""
    summary, ranks = ddp_run(tmp_path, "strategy=transfer", "strategy.cache_features=true")
    assert summary.cached_features is True and not summary.feature_cache_hit
    assert_identical(ranks)
    log = (tmp_path / "run" / "train.log").read_text()
    shards = re.findall(r"feature extraction \(rank (\d) of 2\): (\w+) images (\d+)-(\d+)", log)
    stored = torch.load(summary.feature_cache, weights_only=True)["splits"]
    assert set(stored) == {"train", "val"}  # no test: the run does not test
    for split, entry in stored.items():
        n = len(entry["y"])
        parts = sorted((int(r), int(lo), int(hi)) for r, s, lo, hi in shards if s == split)
        assert parts == [(0, 0, n // 2), (1, n // 2, n)], (split, shards)
    # one process extracting the same data, model and precision: the same key and features
    alone = [o for o in DDP if o != "trainer=ddp_cpu"] + ["strategy=transfer"]
    datamodule, module = build_run(compose([*alone, f"paths.output_dir={tmp_path / 'alone'}"]))
    cpu = torch.device("cpu")
    cached, _, path = feature_cache.prepare(
        module, datamodule, tmp_path / "single", "32-true", cpu, test=False
    )
    assert Path(path).name == Path(summary.feature_cache).name
    for split, entry in stored.items():
        x, y = cached.features[split]
        assert torch.equal(entry["y"], y.cpu())
        torch.testing.assert_close(entry["x"], x.cpu(), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_ranks_on_a_warm_cache_read_it_and_train_one_head(tmp_path):
    """The second DDP run on the same cache: every rank reads it (no extraction, no shard log
    lines) and the ranks still meet in the same collectives (no deadlock), training one head."""
    first, _ = ddp_run(tmp_path / "cold", "strategy=transfer", "strategy.cache_features=true")
    (tmp_path / "warm").mkdir()
    (tmp_path / "warm" / "cache").symlink_to(tmp_path / "cold" / "cache")
    summary, ranks = ddp_run(tmp_path / "warm", "strategy=transfer", "strategy.cache_features=true")
    assert summary.feature_cache_hit and summary.feature_cache.endswith(
        Path(first.feature_cache).name
    )
    assert "feature extraction (rank" not in (tmp_path / "warm" / "run" / "train.log").read_text()
    assert_identical(ranks)
