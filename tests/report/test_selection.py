"""Per-strategy selection on validation, and overrides that must not split a configuration."""

from __future__ import annotations

import csv
import json

import pytest

from tests.helpers.report_runs import make_run
from tlbench import report
from tlbench.config.overrides import is_neutral, run_name

# lr -> (val acc, test acc) per strategy: the val-best and the test-best settings differ.
GRID = {
    "transfer": {"3e-4": (0.70, 0.90), "1e-3": (0.80, 0.70), "3e-3": (0.60, 0.60)},
    "finetune": {"3e-4": (0.75, 0.60), "1e-3": (0.65, 0.95), "3e-3": (0.72, 0.80)},
}
FIT = {"transfer": 10.0, "finetune": 100.0}


@pytest.fixture
def lr_sweep(tmp_path):
    root = tmp_path / "sweep"
    job = 0
    for strategy, settings in GRID.items():
        for lr, (val, test) in settings.items():
            for seed in range(3):
                noise = (seed - 1) / 100  # +-1 point around the setting's mean
                make_run(
                    root,
                    str(job),
                    strategy=strategy,
                    seed=seed,
                    spc=5,
                    best=val + noise,
                    test=test + noise,
                    fit=FIT[strategy],
                    extra_overrides=[f"optimizer.lr={lr}"],
                )
                job += 1
    return root


def rows(root):
    with open(root / "report.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_selection_picks_the_best_mean_val_acc_never_the_test(lr_sweep):
    md = report.write_report(lr_sweep, plots=False).read_text()
    table = rows(lr_sweep)
    chosen = {r["strategy"]: r["config"] for r in table if r["selected"] == "true"}
    assert chosen == {"transfer": "optimizer.lr=1e-3", "finetune": "optimizer.lr=3e-4"}
    assert all(r["settings_tried"] == "3" and r["n"] == "3" for r in table)
    # the search's cost is every run of the arm: 9 runs of 10 s / 100 s
    search = {r["strategy"]: float(r["search_fit_seconds"]) for r in table}
    assert search == {"transfer": 90.0, "finetune": 900.0}
    assert {float(r["fit_seconds_total"]) for r in table} == {30.0, 300.0}

    selected = md.split("## Selected settings")[1].split("## Search grid")[0]
    assert (
        "| 5/class | transfer | optimizer.lr=1e-3 | 3 | 80.0 ± 1.0 % | 80.0 ± 1.0 % | 70.0 ± 1.0 % "
        "| 10 ± 0 s "
        "| 90 s over 9 runs | 3 |" in selected
    )
    assert (
        "| 5/class | finetune | optimizer.lr=3e-4 | 3 | 75.0 ± 1.0 % | 75.0 ± 1.0 % | 60.0 ± 1.0 %"
        in (selected)
    )
    grid = md.split("## Search grid")[1].split("## All configurations")[0]
    assert (
        "| 5/class | finetune | optimizer.lr=1e-3 | 3 | 65.0 ± 1.0 % | 65.0 ± 1.0 % | 100 ± 0 s |  |"
        in (grid)
    )
    assert (
        "| 5/class | finetune | optimizer.lr=3e-4 | 3 | 75.0 ± 1.0 % | 75.0 ± 1.0 % | 100 ± 0 s | ✓ |"
        in (grid)
    )
    assert "95.0" not in grid  # the grid shows what selection saw: no test accuracy
    # the verdict compares the selected settings: transfer 70 % vs finetune 60 % on test
    verdict = md.split("## Verdict")[1].split("## Selected settings")[0]
    assert (
        "**transfer** 70.0 ± 1.0 % (n = 3) leads finetune 60.0 ± 1.0 % (n = 3) by 10.0" in verdict
    )


def test_selection_tie_prefers_more_seeds_then_the_cheaper_setting(tmp_path):
    for i, (lr, seeds, fit) in enumerate((("a", 2, 5.0), ("b", 3, 9.0), ("c", 3, 7.0))):
        for seed in range(seeds):
            make_run(
                tmp_path,
                f"{i}{seed}",
                strategy="transfer",
                seed=seed,
                spc=5,
                best=0.5,
                test=0.5,
                fit=fit,
                extra_overrides=[f"optimizer.lr={lr}"],
            )
    report.write_report(tmp_path, plots=False)
    chosen = [r["config"] for r in rows(tmp_path) if r["selected"] == "true"]
    assert chosen == ["optimizer.lr=c"]  # equal val: 3 seeds beat 2, then 7 s beats 9 s


def test_neutral_overrides_never_split_a_configuration(tmp_path):
    neutral = [
        [],
        ["resume=/old/run", "skip_completed=true"],
        ["hydra.sweep.dir=/x", "logger=none", "trainer.enable_progress_bar=false"],
        ["paths.output_dir=/y", "callbacks.images.every_n_epochs=0", "ckpt_path=/z.ckpt"],
    ]
    for seed, extra in enumerate(neutral):
        make_run(
            tmp_path,
            str(seed),
            strategy="finetune",
            seed=seed,
            spc=5,
            best=0.5,
            test=0.5,
            fit=3,
            extra_overrides=extra,
        )
    md = report.write_report(tmp_path, plots=False).read_text()
    (row,) = rows(tmp_path)
    assert row["n"] == "4" and row["config"] == "" and row["seeds"] == "0 1 2 3"
    assert "resume=" not in md and "skip_completed" not in md


def test_the_neutral_set_is_about_logging_not_results():
    for key in ("resume", "skip_completed", "hydra.job.chdir", "paths.output_dir", "logger"):
        assert is_neutral(key), key
    for key in ("optimizer.lr", "callbacks.model_checkpoint", "trainer.precision", "seed"):
        assert not is_neutral(key), key
    assert run_name(["strategy=lp_ft", "resume=/r", "seed=1", "model=timm/resnet18"]) == (
        "lp_ft s1 timm_resnet18"
    )
    assert run_name(["strategy=finetune", "optimizer.lr=0.0003", "seed=0"]) == "finetune lr=3e-4 s0"
    assert run_name(["data.samples_per_class=10", "test_after_fit=false"]) == "samples_per_class=10"
    assert run_name(["hydra.run.dir=/x", "logger=none"]) == ""


def test_scheduled_strategies_report_their_largest_phase(tmp_path):
    """lp_ft trains the head, then everything: the table shows what actually trained."""
    import json

    as_written = [{"epoch": 0, "trainable": 12810}, {"epoch": 3, "trainable": 3_383_818}]
    for seed, phases in enumerate((as_written, {"probe": 12810, "finetune": 3_383_818})):
        run = make_run(tmp_path, str(seed), strategy="lp_ft", seed=seed, spc=5, best=0.5, fit=3)
        summary = json.loads((run / "summary.json").read_text())
        summary["trainable_params_by_phase"] = phases
        (run / "summary.json").write_text(json.dumps(summary))
    make_run(tmp_path, "old", strategy="lp_ft", seed=9, spc=5, best=0.5, fit=3)  # older summary
    report.write_report(tmp_path, plots=False)
    (row,) = rows(tmp_path)
    assert row["n"] == "3"
    assert float(row["trainable_params"]) == pytest.approx((2 * 3_383_818 + 12810) / 3)


def test_plots_draw_the_selected_settings_and_fade_the_rest(lr_sweep):
    md = report.write_report(lr_sweep).read_text()
    assert (lr_sweep / "report_cost.png").stat().st_size > 1000 and "](report_cost.png)" in md
    cost = md.split("## Accuracy vs cost")[1].split("\n## ")[0]
    # the reading speaks of the selected settings only, then counts the faded ones
    assert "most accurate: transfer · optimizer.lr=1e-3 at 70.0 %" in cost
    assert "Faded: the 4 settings selection did not pick." in cost


def test_the_setting_names_only_what_varies_within_an_arm(tmp_path):
    """A key that differs only between arms (the two-stage preset's `target_budget`, which sets
    the label budget) is said by the columns; the setting shows what the arm's runs compared."""
    from tlbench.report.groups import group_runs
    from tlbench.report.runs import load_runs

    for spc in (10, 50):
        for lr in ("0.001", "0.01"):
            for seed in (0, 1):
                make_run(
                    tmp_path,
                    f"t{spc}_{lr}_{seed}",
                    strategy="transfer",
                    seed=seed,
                    spc=None,
                    best=0.5,
                    test=0.5,
                    fit=1,
                    extra_overrides=[f"target_budget={spc}", f"optimizer.lr={lr}"],
                )
    for path in tmp_path.glob("*/summary.json"):  # the budget comes from the interpolation
        summary = json.loads(path.read_text())
        summary["samples_per_class"] = int(path.parent.name[1:].split("_")[0])
        path.write_text(json.dumps(summary))
    for seed in (
        0,
        1,
    ):  # an arm that tried one setting: nothing to name, though lr varies elsewhere
        make_run(tmp_path / "ft", f"f{seed}", strategy="finetune", seed=seed, spc=10, best=0.6,
                 test=0.6, fit=1, extra_overrides=["optimizer.lr=0.001"])  # fmt: skip
    groups = group_runs(load_runs(tmp_path))
    transfer = [g for g in groups if g.strategy == "transfer"]
    assert len(transfer) == 4 and {g.budget for g in transfer} == {"10/class", "50/class"}
    lrs = sorted(g.config for g in transfer)
    assert lrs == ["optimizer.lr=0.001"] * 2 + ["optimizer.lr=0.01"] * 2
    assert [g.config for g in groups if g.strategy == "finetune"] == [""]
