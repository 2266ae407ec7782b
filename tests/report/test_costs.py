"""Issue 24, item 3: costs are measured, with their noise. A run costs its median epoch time x
its epochs, a cache's feature extraction is a named one-off counted once per cache key (a cache
hit costs its own read time), runs whose epoch times vary by more than 2x are flagged, and the
verdict's cost ratios use these costs, not `fit_seconds`. Fixture runs only: no training."""

from __future__ import annotations

import csv

import pytest

from tests.helpers.report_runs import make_run
from tlbench import report
from tlbench.report import costs
from tlbench.report.groups import group_runs
from tlbench.report.runs import load_runs
from tlbench.report.selection import select


def cached(key: str, hit: bool, read: float = 0.5) -> dict:
    """What a cached-feature run writes: its cache, the extraction stored with it, its own time."""
    return {
        "feature_cache": f"/cache/{key}.pt",
        "feature_cache_hit": hit,
        "feature_cache_seconds": read if hit else 9.0,  # a miss spent it on the extraction
        "feature_extraction_seconds": {"train": 6.0, "val": 1.0, "test": 3.0},
    }


def arms_of(root):
    return select(group_runs(load_runs(root)))


def rows(root) -> list[dict]:
    with open(root / "report.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_noisy_epoch_times_cost_their_median_and_are_flagged(tmp_path):
    # one epoch slowed 5x by other jobs: the sum would say 80 s, the median epoch x 4 says 40 s
    times = [10.0, 10.0, 50.0, 10.0]
    for seed in (0, 1):
        extra = {"epoch_seconds": times if seed == 0 else [10.0] * 4, "epochs": 4}
        make_run(
            tmp_path,
            f"f{seed}",
            strategy="finetune",
            seed=seed,
            spc=5,
            best=0.9,
            test=0.9,
            fit=500.0,
            summary_extra=extra,
        )
    (arm,) = arms_of(tmp_path)
    assert costs.run_cost(arm.selected.ok[0]).total == pytest.approx(40.0)
    assert costs.setting_cost(arm.selected)[:2] == (pytest.approx(40.0), pytest.approx(0.0))
    md = report.write_report(tmp_path, plots=False).read_text()
    assert "40 ± 0 s ⚠ noisy timings (1/2)" in md
    verdict = md.split("## Verdict")[1].split("\n## ")[0]
    assert "timings noisy in 1/2 runs (epoch times up to 5.0x apart: machine loaded?)" in verdict
    (row,) = rows(tmp_path)
    assert float(row["cost_seconds_mean"]) == 40.0 and row["n_noisy_timings"] == "1"
    assert float(row["fit_seconds_mean"]) == 500.0  # the raw fact stays in the CSV


@pytest.mark.parametrize("slow, noisy", [(20.0, False), (21.0, True)])
def test_the_flag_is_for_epoch_times_more_than_2x_apart(tmp_path, slow, noisy):
    # the first of three or more epochs warms up (compilation, autotuning): left out of the check
    extra = {"epoch_seconds": [90.0, 10.0, slow, 10.0], "epochs": 4}
    make_run(
        tmp_path,
        "r",
        strategy="finetune",
        seed=0,
        spc=5,
        best=0.9,
        test=0.9,
        fit=1.0,
        summary_extra=extra,
    )
    (run,) = load_runs(tmp_path)
    assert costs.run_cost(run).noisy is noisy
    assert costs.run_cost(run).total == pytest.approx(4 * (10.0 + slow) / 2)


def test_sub_second_epochs_are_not_flagged_however_far_apart(tmp_path):
    # a cached head: 20 ms epochs and a 185 ms one (its checkpoint) are not a loaded machine
    extra = {"epoch_seconds": [0.075, 0.019, 0.022, 0.028, 0.185], "epochs": 5}
    make_run(tmp_path, "r", strategy="transfer", seed=0, spc=5, best=0.9, test=0.9, fit=1.0,
             summary_extra=extra)  # fmt: skip
    (run,) = load_runs(tmp_path)
    assert costs.run_cost(run).spread > costs.NOISY and not costs.run_cost(run).noisy


def test_two_runs_sharing_a_cache_key_count_the_extraction_once(tmp_path):
    # transfer: two learning rates on the same features (one key): the first job extracted,
    # the second read the cache in 0.5 s. Each run's fit_seconds replayed the extraction.
    for i, (lr, hit) in enumerate([("1e-3", False), ("3e-3", True)]):
        extra = {"epoch_seconds": [1.0, 1.0], "epochs": 2, **cached("k0", hit)}
        make_run(
            tmp_path,
            f"t{i}",
            strategy="transfer",
            seed=0,
            spc=5,
            best=0.8 - i / 10,
            test=0.8,
            fit=9.0,
            extra_overrides=[f"optimizer.lr={lr}"],
            summary_extra=extra,
        )
    (arm,) = arms_of(tmp_path)
    runs = [r for g in arm.settings for r in g.runs]
    assert costs.one_offs(runs) == {costs.EXTRACTION: 7.0}  # train + val, once; test is test's
    # per run: 2 epochs x 1 s, the hit also its 0.5 s read; the extraction once for the arm
    assert arm.search_cost == pytest.approx(2.0 + 2.5 + 7.0)
    hit = next(g for g in arm.settings if "3e-3" in g.config)
    assert costs.setting_cost(hit)[0] == pytest.approx(2.5 + 7.0)  # one run needs one extraction
    report.write_report(tmp_path, plots=False)
    table = rows(tmp_path)
    assert {r["search_cost_seconds"] for r in table} == {"11.5"}
    assert {r["one_off_costs"] for r in table} == {"feature extraction 7.0 s"}
    assert {r["search_fit_seconds"] for r in table} == {"18"}  # the replayed raw sum, kept


def test_separate_cache_keys_each_count_once(tmp_path):
    for seed in (0, 1):  # each seed draws its own subset: its own features
        for i, lr in enumerate(("1e-3", "3e-3")):
            extra = {"epoch_seconds": [1.0], "epochs": 1, **cached(f"seed{seed}", hit=i > 0)}
            make_run(
                tmp_path,
                f"t{seed}{i}",
                strategy="transfer",
                seed=seed,
                spc=5,
                best=0.8,
                test=0.8,
                fit=9.0,
                extra_overrides=[f"optimizer.lr={lr}"],
                summary_extra=extra,
            )
    (arm,) = arms_of(tmp_path)
    # 4 runs x 1 s, 2 hits x 0.5 s read, 2 keys x 7 s
    assert arm.search_cost == pytest.approx(4.0 + 1.0 + 14.0)


def test_the_verdict_compares_measured_costs_and_names_the_extraction(tmp_path):
    for seed in range(3):
        ft = {"epoch_seconds": [3.0, 3.0, 3.0], "epochs": 3}  # 9 s; fit_seconds says 300
        make_run(
            tmp_path,
            f"f{seed}",
            strategy="finetune",
            seed=seed,
            spc=5,
            best=0.90 + seed / 100,
            test=0.90 + seed / 100,
            fit=300.0,
            summary_extra=ft,
        )
        tr = {"epoch_seconds": [0.5, 0.5, 0.5], "epochs": 3, **cached("k", hit=seed > 0)}
        make_run(
            tmp_path,
            f"t{seed}",
            strategy="transfer",
            seed=seed,
            spc=5,
            best=0.88 + seed / 100,
            test=0.88 + seed / 100,
            fit=8.0,
            summary_extra=tr,
        )
    md = report.write_report(tmp_path, plots=False).read_text()
    line = md.split("## Verdict")[1].split("\n## ")[0]
    # transfer: 1.5 s of epochs + a third of a 0.5 s read per run (2 of 3 hit) + 7 s once
    transfer = 1.5 + 1.0 / 3 + 7.0
    expected = f"{9.0 / transfer:.1f}x"
    assert (
        f"Cost finetune / transfer: {expected} (transfer's includes its feature extraction, "
        "7.0 s, once per cache key)." in line
    )
    assert "(incl. feature extraction 7.0 s)" in md  # the tables name it too


def test_runs_without_epoch_times_cost_their_fit_seconds(tmp_path):
    make_run(
        tmp_path,
        "old",
        strategy="finetune",
        seed=0,
        spc=5,
        best=0.9,
        test=0.9,
        fit=42.0,
        summary_extra=cached("k", hit=True),
    )
    (run,) = load_runs(tmp_path)
    cost = costs.run_cost(run)
    # fit_seconds already holds the extraction it replayed: nothing split off, nothing added
    assert (cost.total, cost.shared, cost.measured) == (42.0, {}, False)
