"""Tuning curves (Dodge et al. 2019): the closed forms against brute-force enumeration of every
sequence of k trials, and the sentences the report writes from them."""

from __future__ import annotations

import itertools
import statistics

import pytest

from tlbench.report import tuning
from tlbench.report.groups import Group
from tlbench.report.runs import Run
from tlbench.summary_file import RunSummary


def brute_max(values, k):
    return statistics.fmean(max(seq) for seq in itertools.product(values, repeat=k))


def brute_at_max(keys, payload, k):
    """Every sequence of k draws: the payload of the largest key, ties shared equally."""
    total = []
    for seq in itertools.product(range(len(keys)), repeat=k):
        top = max(keys[i] for i in seq)
        tied = sorted({i for i in range(len(keys)) if keys[i] == top})
        total.append(statistics.fmean(payload[i] for i in tied))
    return statistics.fmean(total)


@pytest.mark.parametrize("values", [[0.5], [0.2, 0.9], [0.3, 0.1, 0.7, 0.4], [0.6, 0.6, 0.1]])
@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_expected_max_is_the_brute_force_mean(values, k):
    assert tuning.expected_max(values, k) == pytest.approx(brute_max(values, k))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_expected_test_of_the_selected_setting_is_the_brute_force_mean(k):
    keys, payload = [0.7, 0.9, 0.7, 0.2], [0.60, 0.50, 0.80, 0.10]
    assert tuning.expected_at_max(keys, payload, k) == pytest.approx(brute_at_max(keys, payload, k))


def test_one_trial_is_the_mean_and_many_trials_approach_the_best():
    values = [0.2, 0.5, 0.8]
    assert tuning.expected_max(values, 1) == pytest.approx(0.5)
    assert tuning.expected_max(values, 50) == pytest.approx(0.8, abs=1e-6)


def _group(strategy, lr, vals, tests, fit=10.0):
    runs = [
        Run(dir=None, summary=RunSummary(strategy=strategy, samples_per_class=10, seed=s,
            best_val_acc=v, test_acc=t, fit_seconds=fit), status="ok",
            overrides={"optimizer.lr": lr, "seed": str(s)})
        for s, (v, t) in enumerate(zip(vals, tests, strict=True))
    ]  # fmt: skip
    return Group(key=(strategy, lr), runs=runs, extras={"optimizer.lr": lr})


def test_an_arms_curve_band_test_and_cost():
    settings = [_group("finetune", "1e-3", [0.6, 0.8], [0.55, 0.75]),
                _group("finetune", "1e-2", [0.2, 0.4], [0.2, 0.3])]  # fmt: skip
    c = tuning.curve("finetune", "10/class", settings)
    assert c.n == 2 and c.val[0] == pytest.approx(0.5) and c.val[1] == pytest.approx(0.6)
    # per seed: seed 0 values (0.6, 0.2) and seed 1 (0.8, 0.4): the same curve shifted by 0.2
    assert c.band[0] == pytest.approx(statistics.stdev([0.4, 0.6]))
    assert c.test[0] == pytest.approx((0.65 + 0.25) / 2)
    assert c.test[1] == pytest.approx(0.75 * 0.65 + 0.25 * 0.25)  # P(best on val picked) = 3/4
    assert c.seconds == pytest.approx([20.0, 40.0])  # one setting = its two seeds


def test_the_sentence_names_who_needs_more_trials_and_unequal_search():
    steady = tuning.Curve("transfer", "10/class", 3, [0.70, 0.72, 0.73], [0] * 3, [None] * 3,
                          [1, 2, 3])  # fmt: skip
    late = tuning.Curve("finetune", "10/class", 3, [0.60, 0.71, 0.80], [0] * 3, [None] * 3,
                        [1, 2, 3])  # fmt: skip
    text = tuning.sentence("10/class", [steady, late])
    assert text == (
        "10/class: transfer is ahead with 1 trial; then finetune from 3 trials "
        "(the winner depends on tuning)."
    )
    assert tuning.sentence("10/class", [steady]) == "10/class: only transfer has finished settings."
    one = tuning.Curve("scratch", "10/class", 1, [0.5], [0.0], [None], [1.0])
    assert "ahead at every number of trials (1-3)" in tuning.sentence("10/class", [steady, one])
    assert "searched unequally (scratch 1, transfer 3 settings)" in tuning.unequal([steady, one])
    assert tuning.unequal([steady, late]) is None
    table = "\n".join(tuning.table([steady, one]))
    assert "| 10/class | scratch | 50.0% ± 0.0 (test —, 1 s) | — | — |" in table


def test_the_report_has_the_tuning_section_plot_and_verdict_note(tmp_path):
    """A sweep where transfer is best after one trial and finetune only after more: report.md
    gets `## Tuning budget` with its sentence and table, report_tuning.png, and the verdict says
    the winner depends on the number of trials; what-trained data adds its section too."""
    from tests.helpers.report_runs import make_run
    from tlbench.report.write import write_report

    grid = {"transfer": [(0.70, 0.70), (0.69, 0.70), (0.71, 0.70)],
            "finetune": [(0.40, 0.45), (0.50, 0.55), (0.90, 0.90)]}  # fmt: skip
    for strategy, settings in grid.items():
        for i, (val, test) in enumerate(settings):
            for seed in (0, 1):
                make_run(tmp_path, f"{strategy}{i}{seed}", strategy=strategy, seed=seed, spc=10,
                         best=val + seed / 100, test=test, fit=10,
                         extra_overrides=[f"optimizer.lr=1e-{i + 2}"],
                         summary_extra={"weight_drift": {"features": 0.1 * (strategy != "transfer")}})  # fmt: skip
    md = write_report(tmp_path).read_text()
    assert "## Tuning budget" in md and (tmp_path / tuning.TUNING_PNG).stat().st_size > 1000
    assert "10/class: transfer is ahead with 1 trial; then finetune from 2 trials" in md
    verdict = md.split("## Verdict")[1].split("\n## ")[0]
    assert "- **Tuning**: 10/class: transfer is ahead with 1 trial; then finetune" in verdict
    assert "## What trained" in md and "| finetune | 0.1 |" in md


def test_the_plot_tells_every_arm_apart(tmp_path):
    """Across models, two arms of one strategy share its colour but not its marker, and a
    strategy without a fixed colour (partial) gets its own, not black."""

    def c(name):
        return tuning.Curve(name, "10/class", 2, [0.5, 0.6], [0.0, 0.0], [0.5, 0.6], [1.0, 2.0])

    names = ["transfer · a", "transfer · b", "partial · a", "finetune · a"]
    fig = tuning.draw({"10/class": [c(n) for n in names]}, tmp_path / "t.png")
    acc = [line for line in fig.axes[0].get_lines()]
    looks = {(line.get_color(), line.get_marker()) for line in acc}
    assert len(acc) == 4 and len(looks) == 4
    assert all(line.get_color() not in ("k", "black") for line in acc)
    assert (tmp_path / "t.png").stat().st_size > 0
