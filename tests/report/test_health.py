"""What a reviewer asks before trusting a verdict (issue 24): collapsed runs are flagged and not
selected for their probe epoch, failed seeds count against their setting, and the verdict warns
about a selected setting at its grid's edge, curves still rising and jobs that never started."""

from __future__ import annotations

import csv

from tests.helpers.report_runs import make_run
from tlbench import report
from tlbench.report.__main__ import main

from .test_verdict import verdict_lines

PHASES = {"trainable_params_by_phase": [{"epoch": 0, "trainable": 7}, {"epoch": 3, "trainable": 9}]}


def lp_ft(root, lr, curves, best=None):
    """lp_ft runs switching at (0-based) epoch 3: epochs 1-3 of the curve are the probe."""
    for seed, curve in enumerate(curves):
        make_run(
            root,
            f"lp_ft_{lr}_{seed}",
            strategy="lp_ft",
            seed=seed,
            spc=5,
            best=max(curve),
            test=max(curve) - 0.05,
            final=curve[-1],
            fit=10,
            curve=curve,
            extra_overrides=[f"optimizer.lr={lr}"],
            summary_extra=PHASES,
        )


def selected(root) -> dict:
    with open(root / "report.csv", newline="") as f:
        return {r["strategy"]: r["config"] for r in csv.DictReader(f) if r["selected"] == "true"}


def test_a_collapse_after_the_switch_is_flagged_and_not_selected(tmp_path):
    # lr 3e-3: the probe reaches 60 %, then fine-tuning falls to 45-50 % and never recovers
    lp_ft(tmp_path, "3e-3", [[0.5, 0.58, 0.60, 0.50, 0.45], [0.5, 0.57, 0.60, 0.55, 0.50]])
    lp_ft(tmp_path, "1e-3", [[0.4, 0.50, 0.52, 0.54, 0.56], [0.4, 0.49, 0.53, 0.55, 0.56]])
    md = report.write_report(tmp_path, plots=False).read_text()
    assert selected(tmp_path) == {"lp_ft": "optimizer.lr=1e-3"}
    (line,) = verdict_lines(tmp_path)
    assert (
        "lp_ft at optimizer.lr=3e-3 collapsed after its switch in 2/2 seeds, so not selected "
        "for its probe epoch" in line
    )
    grid = md.split("## Search grid")[1].split("\n## ")[0]
    # final val acc beside best val, with the flag
    assert (
        "| optimizer.lr=3e-3 | 2 | 60.0 ± 0.0 % | 47.5 ± 3.5 % ⚠ collapsed after its switch "
        "in 2/2 seeds |" in grid
    )
    with open(tmp_path / "report.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["config"]: r["n_collapsed"] for r in rows} == {
        "optimizer.lr=1e-3": "0",
        "optimizer.lr=3e-3": "2",
    }
    # asked for: the collapsed setting's probe epoch may win
    assert main([str(tmp_path), "--no-plots", "--allow-collapsed"]) == 0
    assert selected(tmp_path) == {"lp_ft": "optimizer.lr=3e-3"}


def test_a_fall_at_the_end_is_flagged(tmp_path):
    make_run(tmp_path, "a", strategy="finetune", seed=0, spc=5, best=0.8, final=0.7, test=0.7)
    make_run(tmp_path, "b", strategy="finetune", seed=1, spc=5, best=0.8, final=0.79, test=0.7)
    md = report.write_report(tmp_path, plots=False).read_text()
    assert "| 80.0 ± 0.0 % | 74.5 ± 6.4 % ⚠ collapsed at the end in 1/2 seeds |" in md
    assert "finetune collapsed at the end in 1/2 seeds." in verdict_lines(tmp_path)[0]


def test_a_setting_with_a_failed_seed_loses_to_one_whose_seeds_all_finished(tmp_path):
    for seed in range(2):
        make_run(
            tmp_path,
            f"ok{seed}",
            strategy="finetune",
            seed=seed,
            spc=5,
            best=0.70,
            test=0.7,
            extra_overrides=["optimizer.lr=1e-3"],
        )
    make_run(tmp_path, "hi0", strategy="finetune", seed=0, spc=5, best=0.9, test=0.9,
             extra_overrides=["optimizer.lr=3e-3"])  # fmt: skip
    make_run(tmp_path, "hi1", strategy="finetune", seed=1, spc=5, status="failed", error="NaN",
             extra_overrides=["optimizer.lr=3e-3"])  # fmt: skip
    md = report.write_report(tmp_path, plots=False).read_text()
    assert selected(tmp_path) == {"finetune": "optimizer.lr=1e-3"}
    (line,) = verdict_lines(tmp_path)
    assert (
        "finetune at optimizer.lr=3e-3: 1 of 2 seeds failed, so not preferred to settings "
        "whose seeds all finished" in line
    )
    grid = md.split("## Search grid")[1].split("\n## ")[0]
    assert "| optimizer.lr=3e-3 | 1 (single seed) (1 of 2 seeds failed) |" in grid


def test_the_verdict_warns_about_the_grid_edge_rising_curves_and_unstarted_jobs(tmp_path):
    for i, lr in enumerate(("1e-3", "3e-3")):
        for seed in range(2):
            make_run(
                tmp_path,
                f"{i}_{seed}",
                strategy="scratch",
                seed=seed,
                spc=5,
                best=0.3 + i / 10,
                test=0.3,
                curve=[0.1, 0.2, 0.3 + i / 10],
                extra_overrides=[f"optimizer.lr={lr}"],
            )
    (tmp_path / "multirun.yaml").write_text(
        "hydra:\n  overrides:\n    task:\n    - strategy=scratch\n    - seed=0,1,2\n"
        "  sweeper:\n    params:\n      optimizer.lr: 1e-3,3e-3\n      seed: 0,1\n"
    )
    lines = verdict_lines(tmp_path)
    assert "scratch: selected optimizer.lr=3e-3 is the largest tried (the best may lie" in lines[0]
    assert "scratch at optimizer.lr=3e-3: validation still rising at its last epoch (3)" in lines[0]
    # the command line's seed=0,1,2 replaces the preset's seed: 2 LRs x 3 seeds, 4 found
    assert lines[1] == (
        "- **Sweep**: 2 of 6 jobs of the sweep never started (multirun.yaml launches 6, 4 run "
        "dirs found): the sweep was killed or is still launching."
    )


def test_old_run_dirs_without_the_new_fields_leave_the_marks_out(tmp_path):
    for seed in range(2):
        path = make_run(tmp_path, f"r{seed}", strategy="transfer", seed=seed, spc=5, best=0.6,
                        test=0.6, fit=3)  # fmt: skip
        text = (path / "summary.json").read_text().replace('"final_val_acc": 0.6, ', "")
        (path / "summary.json").write_text(text)
    md = report.write_report(tmp_path, plots=False).read_text()
    assert "final val acc" not in md and "⚠" not in md and "Warnings" not in md
    assert "**Sweep**" not in md  # no multirun.yaml: nothing to count


def test_the_advice_does_not_name_a_cheaper_arm_that_collapsed(tmp_path):
    """As in the surgical showcase: a cheap arm whose selected setting fell at the end in one
    seed is no alternative to recommend; the next cheaper arm that held is named instead."""
    for seed, (acc, final) in enumerate([(0.66, 0.64), (0.66, 0.60)]):
        make_run(tmp_path, f"s7_{seed}", strategy="surgical_7", seed=seed, spc=5, best=acc,
                 final=final, test=acc, fit=1.0)  # fmt: skip
    for seed, acc in enumerate([0.70, 0.72]):
        make_run(tmp_path, f"ft_{seed}", strategy="finetune", seed=seed, spc=5, best=acc,
                 test=acc, fit=10.0)  # fmt: skip
        make_run(tmp_path, f"tr_{seed}", strategy="transfer", seed=seed, spc=5, best=acc - 0.08,
                 test=acc - 0.08, fit=1.0)  # fmt: skip
    line = verdict_lines(tmp_path)[0]
    assert "Advice: transfer reaches" in line and "prefer surgical_7" not in line
    assert "surgical_7 collapsed at the end in 1/2 seeds" in line


def test_the_advice_says_when_every_cheaper_arm_collapsed(tmp_path):
    for seed, acc in enumerate([0.70, 0.72]):
        make_run(tmp_path, f"ft_{seed}", strategy="finetune", seed=seed, spc=5, best=acc,
                 test=acc, fit=10.0)  # fmt: skip
        make_run(tmp_path, f"tr_{seed}", strategy="transfer", seed=seed, spc=5, best=0.66,
                 final=0.6 if seed else 0.66, test=0.66, fit=1.0)  # fmt: skip
    line = verdict_lines(tmp_path)[0]
    assert (
        "Advice: finetune is the most accurate, and the strategies that cost less than 1/1.5 of "
        "it collapsed (transfer): use it." in line
    )


def test_a_plateau_whose_last_epoch_is_higher_by_a_hair_is_not_rising():
    """The mean validation curve of random Lite1 scratch at 30 epochs (cosine, 2 seeds, the README
    ranking study): its last epoch is its best, by 0.08 points over epoch 24 and 0.25 over the
    best before its last quarter -- a plateau, not a curve that more epochs would lift."""
    from tlbench.report import health, readings

    plateau = [0.3183, 0.6708, 0.6608, 0.7192, 0.8025, 0.7292, 0.8375, 0.8242, 0.8508, 0.8542,
               0.8508, 0.8592, 0.8842, 0.8583, 0.8225, 0.88, 0.8767, 0.875, 0.8858, 0.8842,
               0.8958, 0.8958, 0.8983, 0.9, 0.8983, 0.8958, 0.8992, 0.8992, 0.9, 0.9008]  # fmt: skip
    assert not health.rising(plateau)
    group = type("G", (), {"strategy": "scratch"})()
    reading = readings.curves_reading([(group, list(range(1, 31)), plateau, None)])
    assert reading == (
        "scratch peaks at epoch 30.0 on average (of 30), best at the last epoch but level (under "
        "0.5 points above the epochs before the last quarter) in 1/1 configurations."
    )
    assert health.rising([*plateau[:-1], 0.91])  # a point above the rest: still rising
    assert health.rising([0.1, 0.2, 0.4]) and health.rising([0.5, 0.6])
    assert not health.rising([0.5, 0.7, 0.6]) and not health.rising([0.5])
    assert not health.rising([0.60, 0.601])  # within half a point
