"""ranking_check: rankings beside fine-tuned results of the same sweep (fixture files only)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tlbench.report import ranking_check

DATA = {"name": "fashion_mnist", "classes": ["a", "b"], "samples_per_class": 20}


def _cand(label, kind, arch, probe, logme, **extra):
    return {
        "candidate": label,
        "spec": label,
        "kind": kind,
        "arch": arch,
        "status": "ok",
        "linear_probe": probe,
        "knn": probe,
        "logme": logme,
        "hscore": logme,
        **extra,
    }


def _run(root: Path, name: str, model: str, strategy: str, weights, acc, classes=("a", "b")):
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text(
        f"data:\n  name: fashion_mnist\n  classes: {list(classes)}\n  samples_per_class: 20\n"
    )
    summary = {
        "status": "ok",
        "model": model,
        "strategy": strategy,
        "weights": weights,
        "data": "fashion_mnist",
        "test_acc": acc,
        "samples_per_class": 20,
    }
    (run / "summary.json").write_text(json.dumps(summary))


@pytest.fixture
def sweep(tmp_path):
    source = tmp_path / "sources" / "lenet_src"
    (source / "checkpoints").mkdir(parents=True)
    (source / "checkpoints" / "best.ckpt").write_bytes(b"x")
    ranking = {
        "data": DATA,
        "candidates": [
            _cand("lenet5@lenet_src", "checkpoint", "lenet5", 0.9, 1.0, source_path=str(source)),
            _cand("efficientnet_lite0", "pretrained", "efficientnet_lite0", 0.8, 0.5),
            _cand("random:lenet5", "random", "lenet5", 0.5, 0.1),
        ],
    }
    (tmp_path / "rank").mkdir()
    (tmp_path / "rank" / "ranking.json").write_text(json.dumps(ranking))
    _run(tmp_path, "r0", "lenet5", "finetune", str(source), 0.95)
    # summary.json's weights: the config value, or the origin a run reports (file:, package:, random)
    _run(tmp_path, "r1", "lenet5", "transfer", f"file:{source / 'checkpoints' / 'best.ckpt'}", 0.85)
    _run(tmp_path, "r2", "efficientnet_lite0", "transfer", "DEFAULT", 0.70)
    _run(tmp_path, "r3", "efficientnet_lite0", "transfer", "package:efficientnet-lite0", 0.80)
    _run(tmp_path, "r4", "lenet5", "scratch", None, 0.60)
    _run(tmp_path, "r6", "lenet5", "transfer", "random", 0.40)  # frozen random features: worse
    _run(tmp_path, "r5", "lenet5", "scratch", None, 0.99, classes=("c", "d"))  # other data
    return tmp_path


def test_candidates_match_their_runs_and_the_best_strategy_mean_is_the_truth(sweep):
    ranking = json.loads((sweep / "rank" / "ranking.json").read_text())
    result = ranking_check.check(ranking, ranking_check.finished_runs(sweep))
    actual = {r["candidate"]: r["actual"] for r in result["rows"]}
    assert actual["lenet5@lenet_src"] == pytest.approx((0.95, "finetune", 1))
    assert actual["efficientnet_lite0"] == pytest.approx((0.75, "transfer", 2))
    assert actual["random:lenet5"] == pytest.approx(
        (0.60, "scratch", 1)
    )  # not the other classes' 0.99
    assert result["tau"]["logme"] == (pytest.approx(1.0), 3)


def test_report_section_has_the_table_and_tau(sweep):
    lines = ranking_check.section(sweep)
    text = "\n".join(lines)
    assert lines[0] == "## Ranking vs fine-tuned results"
    assert "| lenet5@lenet_src | 95.0% (finetune, 1) |" in text
    assert "Kendall's tau vs actual** | | +1.00 (n=3)" in text


def test_a_reversed_estimator_gets_negative_tau():
    ranking = {
        "data": DATA,
        "candidates": [
            _cand("x", "pretrained", "x", 0.9, 0.1),
            _cand("y", "pretrained", "y", 0.5, 0.9),
        ],
    }
    runs = [
        {"model": "x", "weights": "DEFAULT", "strategy": "t", "test_acc": 0.9, "_data": DATA},
        {"model": "y", "weights": "DEFAULT", "strategy": "t", "test_acc": 0.5, "_data": DATA},
    ]
    tau = ranking_check.check(ranking, runs)["tau"]
    assert tau["linear_probe"][0] == pytest.approx(1.0)
    assert tau["logme"][0] == pytest.approx(-1.0)


def test_no_ranking_or_no_matching_run_adds_nothing(tmp_path):
    assert ranking_check.section(tmp_path) == []
    (tmp_path / "ranking.json").write_text(
        json.dumps({"data": DATA, "candidates": [_cand("x", "pretrained", "x", 0.9, 0.1)]})
    )
    assert ranking_check.section(tmp_path) == []


def test_python_m_tlbench_report_adds_the_section(sweep):
    from tlbench.report.write import write_report

    text = write_report(sweep, plots=False).read_text()
    assert "## Ranking vs fine-tuned results" in text and "Kendall's tau vs actual" in text


def test_the_actual_accuracy_is_the_setting_selected_on_validation_never_on_test():
    """Two settings of one source: the one with the better validation accuracy stands for it,
    even where the other one's test accuracy is higher."""
    cand = _cand("lite", "pretrained", "lite", 0.9, 0.1)
    runs = [
        {"model": "lite", "weights": "DEFAULT", "strategy": "finetune", "_data": DATA,
         "overrides": ["strategy=finetune", "optimizer.lr=0.01", f"seed={s}"],
         "best_val_acc": 0.60, "test_acc": 0.90}
        for s in (0, 1)
    ] + [
        {"model": "lite", "weights": "DEFAULT", "strategy": "finetune", "_data": DATA,
         "overrides": ["strategy=finetune", "optimizer.lr=0.001", f"seed={s}"],
         "best_val_acc": 0.70, "test_acc": 0.80 + s / 100}
        for s in (0, 1)
    ]  # fmt: skip
    assert ranking_check.actual(cand, runs) == pytest.approx((0.805, "finetune", 2))


def _curve(run: Path, accs) -> None:
    rows = "".join(f"{e},{a}\n" for e, a in enumerate(accs))
    (run / "metrics.csv").write_text("epoch,val/acc\n" + rows)


def test_the_check_says_what_each_actual_stands_on_seeds_strategies_and_curve(tmp_path):
    """Per source: the selected setting, the strategies tried, the seeds (a warning below 2) and
    the report's own curve reading of the selected setting (a warning while still rising)."""
    ranking = {
        "data": DATA,
        "candidates": [
            _cand("lite", "pretrained", "lite", 0.9, 0.9),
            _cand("random:lite", "random", "lite", 0.5, 0.5),
        ],
    }
    (tmp_path / "rank").mkdir()
    (tmp_path / "rank" / "ranking.json").write_text(json.dumps(ranking))
    for name, strategy, weights, seed, val, accs in [
        ("ft0", "finetune", "DEFAULT", 0, 0.80, [0.5, 0.8, 0.7]),  # peaked: converged
        ("ft1", "finetune", "DEFAULT", 1, 0.78, [0.5, 0.78, 0.75]),
        ("tr0", "transfer", "DEFAULT", 0, 0.70, [0.6, 0.7, 0.7]),
        ("sc0", "scratch", None, 0, 0.60, [0.2, 0.4, 0.6]),  # one seed, still rising
    ]:
        _run(tmp_path, name, "lite", strategy, weights, val)
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        summary.update(seed=seed, best_val_acc=val)
        (tmp_path / name / "summary.json").write_text(json.dumps(summary))
        _curve(tmp_path / name, accs)
    runs = ranking_check.finished_runs(tmp_path)
    picked = ranking_check.select(ranking["candidates"][0], runs)
    assert (picked["strategy"], picked["seeds"], picked["tried"]) == (
        "finetune", 2, ["finetune", "transfer"]
    )  # fmt: skip
    assert picked["rising"] is False and picked["test"] == pytest.approx(0.79)
    text = "\n".join(ranking_check.section(tmp_path))
    assert "- lite: finetune, the best of 2 setting(s) of finetune, transfer; 2 seed(s). " in text
    assert "Validation curve: finetune peaks at epoch 2.0 on average (of 3)." in text
    control = next(ln for ln in text.splitlines() if ln.startswith("- random:lite:"))
    assert "1 seed(s). **Fewer than 2 seeds" in control
    assert "still rising at the last epoch in 1/1 configurations" in control  # readings' words
    assert "**So this actual may understate the source.**" in control
    assert "Fewer than 2" not in text.split("- lite:")[1].split("\n")[0]


def test_the_evidence_names_only_what_sets_each_actual_apart():
    def row(name, strategy, config):
        selected = {"strategy": strategy, "config": config, "settings": 2, "tried": [strategy],
                    "seeds": 2, "curve": None, "rising": False}  # fmt: skip
        return {"candidate": name, "selected": selected}

    lines = ranking_check.evidence([
        row("a", "finetune", "optimizer.lr=0.001 strategy=finetune trainer.max_epochs=10"),
        row("b", "scratch", "optimizer.lr=0.003 strategy=scratch trainer.max_epochs=10"),
    ])  # fmt: skip
    assert "Every actual shares trainer.max_epochs=10." in lines
    assert any(ln.startswith("- a: finetune optimizer.lr=0.001, the best of") for ln in lines)
    assert any(ln.startswith("- b: scratch optimizer.lr=0.003, the best of") for ln in lines)


def test_a_selected_lr_at_the_grid_edge_is_named_epochs_are_left_to_the_curve():
    settings = [
        ("finetune", "optimizer.lr=0.001 trainer.max_epochs=6"),
        ("finetune", "optimizer.lr=0.003 trainer.max_epochs=6"),
        ("finetune", "optimizer.lr=0.003 trainer.max_epochs=15"),
        ("transfer", "optimizer.lr=0.03 trainer.max_epochs=6"),  # another strategy's grid
    ]
    edge = ranking_check.grid_edge(settings[2], settings)
    assert edge == ["optimizer.lr=0.003 is the largest tried"]  # not max_epochs=15
    assert ranking_check.grid_edge(settings[0], settings) == [
        "optimizer.lr=0.001 is the smallest tried"
    ]
    middle = [*settings, ("finetune", "optimizer.lr=0.01 trainer.max_epochs=6")]
    assert ranking_check.grid_edge(settings[1], middle) == []
    assert ranking_check.grid_edge(settings[3], settings) == []  # one value tried: no grid
    selected = {"strategy": "finetune", "config": "optimizer.lr=0.003", "settings": 3,
                "tried": ["finetune"], "seeds": 2, "curve": None, "rising": False, "edge": edge}  # fmt: skip
    (line,) = [ln for ln in ranking_check.evidence([{"candidate": "a", "selected": selected}])
               if ln.startswith("- a:")]  # fmt: skip
    assert line.endswith(
        "At its grid's edge: optimizer.lr=0.003 is the largest tried (the best may lie beyond)."
    )
