"""The verdict at the top of report.md: leads judged by a paired test, ties, single seeds, failed jobs
and the accuracy-for-cost advice, all computed from fixture runs."""

from __future__ import annotations

from tests.helpers.report_runs import make_run
from tlbench import report
from tlbench.report.groups import group_runs
from tlbench.report.runs import load_runs
from tlbench.report.selection import select
from tlbench.report.verdict import verdicts


def add(root, strategy, tests, *, fit, spc=5, status="ok"):
    """One run per seed with the given test accuracies (val = test, one setting per arm)."""
    for seed, acc in enumerate(tests):
        make_run(
            root,
            f"{strategy}{spc}_{seed}",
            strategy=strategy,
            seed=seed,
            spc=spc,
            best=acc,
            test=acc,
            fit=fit,
            status=status,
            error="boom" if status == "failed" else None,
        )


def verdict_lines(root) -> list[str]:
    md = report.write_report(root, plots=False).read_text()
    section = md.split("## Verdict")[1].split("\n## ")[0]
    return [ln for ln in section.splitlines() if ln.startswith("- ")]


def the_verdict(root):
    (v,) = verdicts(select(group_runs(load_runs(root))), "test_acc")
    return v


def test_a_significant_lead_with_the_cost_advice(tmp_path):
    add(tmp_path, "finetune", [0.90, 0.91, 0.92], fit=300)
    add(tmp_path, "transfer", [0.88, 0.89, 0.90], fit=10)
    add(tmp_path, "scratch", [0.50, 0.60, 0.70], fit=100)
    v = the_verdict(tmp_path)
    assert [a.strategy for a in v.ranked] == ["finetune", "transfer", "scratch"]
    assert v.distinguishable is True and not v.single_seed
    (line,) = verdict_lines(tmp_path)
    assert line.startswith(
        "- **5/class**: **finetune** 91.0 ± 1.0 % (n = 3) leads transfer 89.0 ± 1.0 % (n = 3) "
        "by 2.0 points: significant at 0.05 (paired t, n = 3, p < 0.001; +2.0 points; "
        "ahead on 3/3 seeds)."
    )
    assert "Cost finetune / transfer: 30x." in line  # fit_seconds: no per-epoch times
    assert "Then: scratch 60.0 ± 10.0 % (n = 3)." in line
    assert "finetune vs scratch: significant (paired t, n = 3, p = 0.027)." in line
    assert "Advice: transfer reaches 98 % of finetune's accuracy at 1/30 of the cost" in line


def test_a_lead_the_paired_test_does_not_support_is_not_distinguishable(tmp_path):
    add(tmp_path, "finetune", [0.80, 0.90, 1.00], fit=300)
    add(tmp_path, "transfer", [0.85, 0.88, 0.91], fit=10)
    v = the_verdict(tmp_path)
    assert v.ranked[0].strategy == "finetune" and v.distinguishable is False
    (line,) = verdict_lines(tmp_path)
    assert (
        "by 2.0 points: not distinguishable (paired t, n = 3, p = 0.67; +2.0 points, 95 % CI "
        "-15.4 to +19.4; ahead on 2/3 seeds; about 99 seeds needed for 80 % power (paired t at "
        "the observed paired spread))." in line
    )
    assert "the difference is not distinguishable (paired t, n = 3, p = 0.67): prefer" in line


def test_a_tie_names_both_and_prefers_the_cheaper(tmp_path):
    add(tmp_path, "transfer", [0.70, 0.80], fit=5)
    add(tmp_path, "finetune", [0.80, 0.70], fit=50)
    v = the_verdict(tmp_path)
    assert {a.strategy for a in v.tied} == {"transfer", "finetune"}
    assert v.distinguishable is False
    (line,) = verdict_lines(tmp_path)
    assert "**transfer** and **finetune** tie at 75.0 %: not distinguishable" in line
    assert "Advice: transfer is the most accurate and the cheapest: use it." in line


def test_the_advice_names_the_best_cheaper_arm_not_one_at_chance(tmp_path):
    """As measured on Fashion-MNIST at 10 labels per class: scratch is a little cheaper than
    fine-tuning but at chance; transfer, far cheaper, is the alternative worth naming. On digits
    at 100 per class scratch was 3 % cheaper and transfer 17x: a 3 % saving is not named."""
    add(tmp_path, "finetune", [0.55, 0.58, 0.60], fit=10.0)
    add(tmp_path, "transfer", [0.52, 0.54, 0.55], fit=2.4)
    add(tmp_path, "scratch", [0.11, 0.12, 0.11], fit=6.0)
    (line,) = verdict_lines(tmp_path)
    assert "Advice: transfer reaches 93 % of finetune's accuracy at 1/4.2" in line
    assert "scratch reaches" not in line
    add(tmp_path / "digits", "finetune", [0.98, 0.985, 0.99], fit=34.0)
    add(tmp_path / "digits", "scratch", [0.92, 0.91, 0.93], fit=33.0)
    add(tmp_path / "digits", "transfer", [0.91, 0.915, 0.91], fit=2.0)
    (line,) = verdict_lines(tmp_path / "digits")
    assert "Advice: transfer reaches 93 % of finetune's accuracy at 1/17 of the cost" in line
    add(tmp_path / "close", "finetune", [0.60, 0.62], fit=10.0)
    add(tmp_path / "close", "scratch", [0.50, 0.52], fit=9.0)
    (line,) = verdict_lines(tmp_path / "close")
    assert "finetune is the most accurate, and no strategy costs less than 1/1.5 of it" in line
    add(tmp_path / "dearer", "finetune", [0.55, 0.58, 0.60], fit=10.0)
    add(tmp_path / "dearer", "transfer", [0.52, 0.54, 0.55], fit=12.0)
    (line,) = verdict_lines(tmp_path / "dearer")
    assert "Advice: finetune is the most accurate and the cheapest: use it." in line


def test_single_seeds_are_marked_and_never_judged(tmp_path):
    add(tmp_path, "transfer", [0.70], fit=5)
    add(tmp_path, "scratch", [0.60, 0.61], fit=20)
    v = the_verdict(tmp_path)
    assert v.single_seed and v.distinguishable is None and v.paired() is None
    (line,) = verdict_lines(tmp_path)
    assert "**transfer** 70.0 % (n = 1) leads scratch 60.5 ± 0.7 % (n = 2)" in line
    assert "single seed (n = 1): no spread, so the lead cannot be judged" in line


def test_failed_jobs_are_named_and_left_out(tmp_path):
    add(tmp_path, "transfer", [0.70, 0.72], fit=5)
    add(tmp_path, "finetune", [None, None], fit=None, status="failed")
    (line,) = verdict_lines(tmp_path)
    assert line.startswith("- **5/class**: only **transfer** finished: 71.0 ± 1.4 % (n = 2)")
    assert "finetune: no finished run" in line

    nothing = tmp_path / "all_failed"
    add(nothing, "scratch", [None], fit=None, status="failed")
    (line,) = verdict_lines(nothing)
    assert line == "- **5/class**: no strategy finished (scratch: no finished run)."


def test_one_verdict_line_per_label_budget(tmp_path):
    for spc, (t, f) in ((5, (0.6, 0.5)), (50, (0.8, 0.9))):
        add(tmp_path, "transfer", [t, t + 0.01], fit=5, spc=spc)
        add(tmp_path, "finetune", [f, f + 0.01], fit=50, spc=spc)
    lines = verdict_lines(tmp_path)
    assert [ln.split("**")[1] for ln in lines] == ["5/class", "50/class", "Label budget"]
    assert "**transfer** 60.5" in lines[0] and "**finetune** 90.5" in lines[1]
    # the order flips between the budgets: where, on log labels (equal gaps: the geometric mean)
    assert lines[2].startswith(
        "- **Label budget**: finetune overtakes transfer between 5 and 50 labels per class "
        "(at about 16, interpolated on log labels; "
    )


def test_without_test_accuracy_the_verdict_says_validation_is_reused(tmp_path):
    for i, lr in enumerate(("1e-3", "3e-3")):
        for seed in range(2):
            make_run(
                tmp_path,
                f"{i}{seed}",
                strategy="transfer",
                seed=seed,
                spc=5,
                best=0.5 + i / 10,
                fit=3,
                extra_overrides=[f"optimizer.lr={lr}"],
            )
    md = report.write_report(tmp_path, plots=False).read_text()
    verdict = md.split("## Verdict")[1].split("## Selected settings")[0]
    assert "compared on the best validation accuracy" in verdict
    assert "reuses the validation accuracy that chose the settings" in verdict
    assert "only **transfer** finished: 60.0" in verdict


def test_several_models_get_one_line_per_cell_naming_data_and_model(tmp_path):
    import json

    add(tmp_path, "transfer", [0.6, 0.62], fit=5)
    add(tmp_path, "finetune", [0.7, 0.72], fit=50)
    for run in tmp_path.glob("finetune*"):  # the same arms on a second model
        twin = tmp_path / f"r18_{run.name}"
        twin.mkdir()
        summary = json.loads((run / "summary.json").read_text())
        summary.update(model="resnet18", test_acc=0.9, best_val_acc=0.9)
        (twin / "summary.json").write_text(json.dumps(summary))
    lines = verdict_lines(tmp_path)
    assert len(lines) == 2
    assert lines[0].startswith("- **5/class** (digits · efficientnet_lite0): **finetune** 71.0")
    assert lines[1].startswith("- **5/class** (digits · resnet18): only **finetune** finished")


def test_across_models_puts_every_strategy_and_model_in_one_verdict(tmp_path):
    """The two-stage design: a source-pretrained mini VGG (transfer, scratch) against ImageNet
    transfer with another network. By default each model is its own cell; `--across-models`
    compares the (strategy, model) arms in one verdict, each still selected on validation."""
    import json

    add(tmp_path, "transfer", [0.60, 0.62, 0.64], fit=5)
    add(tmp_path, "scratch", [0.20, 0.21, 0.22], fit=4)
    imagenet = tmp_path / "imagenet"
    add(imagenet, "transfer", [0.70, 0.72, 0.74], fit=9)
    for path in imagenet.glob("*/summary.json"):
        summary = json.loads(path.read_text())
        summary.update(model="mini_vgg", overrides=[*summary["overrides"], "model=mini_vgg"])
        path.write_text(json.dumps(summary))
    assert len(verdict_lines(tmp_path)) == 2  # one cell per model
    md = report.write_report(tmp_path, plots=False, across_models=True).read_text()
    (line,) = [ln for ln in md.split("## Verdict")[1].splitlines() if ln.startswith("- ")]
    assert line.startswith(
        "- **5/class**: **transfer · mini_vgg** 72.0 ± 2.0 % (n = 3) leads "
        "transfer · efficientnet_lite0 62.0 ± 2.0 % (n = 3) by 10.0 points"
    )
    assert "scratch · efficientnet_lite0 21.0 ± 1.0 % (n = 3)" in line
    from tlbench.report.__main__ import main

    assert main([str(tmp_path), "--no-plots", "--across-models"]) == 0  # the command-line flag
    assert "(models compared)" in (tmp_path / "report.md").read_text()


def test_the_advice_judges_the_spread_against_the_arm_it_names(tmp_path):
    """Two-stage, 50 labels per class: partial and finetune are within the spread of each
    other, but the cheaper arm the advice names is 4.5 points behind, well beyond it."""
    add(tmp_path, "partial", [0.888, 0.890, 0.892], fit=4.9)
    add(tmp_path, "finetune", [0.877, 0.887, 0.897], fit=6.7)
    add(tmp_path, "transfer", [0.837, 0.845, 0.853], fit=1.5)
    v = the_verdict(tmp_path)
    assert v.distinguishable is False  # the leader vs the runner-up
    (line,) = verdict_lines(tmp_path)
    assert "Advice: transfer reaches 95 % of partial's accuracy at 1/3.3 of the cost; " in line
    assert "partial's lead over it is significant (paired t, n = 3, p = 0.006)." in line
