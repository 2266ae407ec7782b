"""The ranking check's measures (Kendall's tau, weighted tau, top-1 regret and hit) and the
baselines every estimator must beat, on small hand-made lists."""

from __future__ import annotations

import json

import pytest
from scipy.stats import kendalltau, weightedtau

from tlbench.report import ranking_check, ranking_measures


def test_a_perfect_ranking_scores_one_and_no_regret():
    m = ranking_measures.measures([3.0, 2.0, 1.0, 0.5, 0.1], [0.9, 0.8, 0.7, 0.6, 0.5])
    assert m == pytest.approx({"n": 5, "tau": 1.0, "weighted_tau": 1.0, "regret": 0.0, "hit": True})


def test_regret_is_what_following_the_top_score_cost():
    # the estimator's favourite (score 9) reached 70 %, the best source 90 %: 20 points
    m = ranking_measures.measures([1.0, 9.0, 2.0], [0.90, 0.70, 0.80])
    assert m["regret"] == pytest.approx(20.0) and m["hit"] is False
    assert m["tau"] == pytest.approx(kendalltau([1, 9, 2], [0.9, 0.7, 0.8]).statistic)
    assert m["weighted_tau"] == pytest.approx(weightedtau([1, 9, 2], [0.9, 0.7, 0.8]).statistic)


def test_weighted_tau_punishes_a_swap_at_the_top_more_than_at_the_bottom():
    truth = [0.9, 0.8, 0.7, 0.6, 0.5]
    top_swapped = ranking_measures.measures([4, 5, 3, 2, 1], truth)
    bottom_swapped = ranking_measures.measures([5, 4, 3, 1, 2], truth)
    assert top_swapped["tau"] == pytest.approx(bottom_swapped["tau"])  # one discordant pair each
    assert top_swapped["weighted_tau"] < bottom_swapped["weighted_tau"]
    assert top_swapped["regret"] == pytest.approx(10.0) and bottom_swapped["regret"] == 0


def test_constant_scores_give_no_tau_but_a_regret():
    m = ranking_measures.measures([1.0, 1.0], [0.5, 0.7])
    assert m["tau"] is None and m["weighted_tau"] is None and m["regret"] == pytest.approx(20.0)


def test_baselines_come_from_size_metadata_and_random_controls():
    rows = [
        {"candidate": "resnet50", "arch": "resnet50", "kind": "pretrained", "params": 23.5e6,
         "imagenet_top1": 0.76},
        {"candidate": "lite0", "arch": "lite0", "kind": "pretrained", "params": 3.6e6},
        {"candidate": "random:lite0", "arch": "lite0", "kind": "random", "params": 3.6e6,
         "linear_probe": 0.4},
    ]  # fmt: skip
    b = ranking_measures.baseline_scores(rows)
    assert b["size"] == {"resnet50": 23.5e6, "lite0": 3.6e6, "random:lite0": 3.6e6}
    assert b["imagenet_top1"] == {"resnet50": 0.76}
    assert b["control"] == {"lite0": 0.4, "random:lite0": 0.4}


def test_an_estimator_below_the_size_baseline_is_marked_and_few_sources_are_said():
    truth = [0.9, 0.8, 0.7]
    per = {
        "logme": ranking_measures.measures([1, 2, 3], truth),  # reversed
        "knn": ranking_measures.measures([3, 2, 1], truth),
        "size": ranking_measures.measures([30, 20, 10], truth),
    }
    text = "\n".join(ranking_measures.table(per, {"logme": "LogME", "knn": "kNN"}))
    assert "| LogME (does not beat size) | -1.00 | -1.00 | 20.0 points | no | 3 |" in text
    # a tie with the size baseline does not beat it either
    assert "| kNN (does not beat size) | +1.00 | +1.00 | 0.0 points | yes | 3 |" in text
    assert "| *baseline: size (params)* |" in text
    assert "close to meaningless (one swapped pair moves Kendall's tau by 0.67)" in (
        ranking_measures.caveat(3)
    )
    assert ranking_measures.caveat(8) == "8 sources have both a score and a fine-tuned result."


def test_the_report_section_has_the_measures_with_the_size_baseline(tmp_path):
    data = {"name": "digits", "classes": None, "samples_per_class": 20}
    cands = []
    for i, (name, probe, params) in enumerate(
        [("a", 0.9, 5), ("b", 0.8, 3), ("c", 0.6, 9), ("d", 0.5, 1), ("e", 0.3, 2)]
    ):
        cands.append(
            {"candidate": name, "spec": name, "kind": "pretrained", "arch": name, "status": "ok",
             "linear_probe": probe, "params": params, "ranks": {"linear_probe": i + 1}}
        )  # fmt: skip
    (tmp_path / "ranking.json").write_text(json.dumps({"data": data, "candidates": cands}))
    runs = [
        {"model": n, "weights": "DEFAULT", "strategy": "transfer", "test_acc": acc, "_data": data}
        for n, acc in zip("abcde", [0.95, 0.85, 0.75, 0.65, 0.55], strict=True)
    ]
    result = ranking_check.check(json.loads((tmp_path / "ranking.json").read_text()), runs)
    assert result["measures"]["linear_probe"]["tau"] == pytest.approx(1.0)
    assert result["measures"]["size"]["regret"] == pytest.approx(20.0)  # c: 9 params, 75 %
    lines = ranking_check._section_for(tmp_path / "ranking.json", tmp_path, {"data": data,
        "candidates": cands}, runs)  # fmt: skip
    text = "\n".join(lines)
    assert "5 sources have both a score and a fine-tuned result." in text
    assert "| linear probe | +1.00 | +1.00 | 0.0 points | yes | 5 |" in text


def test_every_baseline_gets_its_row_over_the_candidates_that_have_it():
    """ImageNet top-1 where the weights' metadata has it (2 of 4 here), the random control's
    probe for every candidate whose architecture has one, size for all; estimators are marked
    against size only."""
    rows = [
        {"candidate": "rn50", "arch": "rn50", "kind": "pretrained", "params": 23.5e6,
         "imagenet_top1": 0.76, "linear_probe": 0.9, "actual": (0.90, "finetune", 2)},
        {"candidate": "rn18", "arch": "rn18", "kind": "pretrained", "params": 11.2e6,
         "imagenet_top1": 0.70, "linear_probe": 0.8, "actual": (0.80, "finetune", 2)},
        {"candidate": "random:rn50", "arch": "rn50", "kind": "random", "params": 23.5e6,
         "linear_probe": 0.7, "actual": (0.60, "scratch", 2)},
        {"candidate": "random:rn18", "arch": "rn18", "kind": "random", "params": 11.2e6,
         "linear_probe": 0.5, "actual": (0.50, "scratch", 2)},
    ]  # fmt: skip
    truth = [r["actual"][0] for r in rows]
    per = {"linear_probe": ranking_measures.measures([r["linear_probe"] for r in rows], truth)}
    for name, scores in ranking_measures.baseline_scores(rows).items():
        pairs = [(scores[r["candidate"]], r["actual"][0]) for r in rows if r["candidate"] in scores]
        per[name] = ranking_measures.measures(*ranking_check._columns(pairs))
    assert [per[b]["n"] for b in ("size", "imagenet_top1", "control")] == [4, 2, 4]
    text = "\n".join(ranking_measures.table(per, {"linear_probe": "linear probe"}))
    assert "| *baseline: ImageNet top-1* | +1.00 | +1.00 | 0.0 points | yes | 2 |" in text
    assert "| *baseline: random control* |" in text and "| *baseline: size (params)* |" in text
    # the probe (tau 1) beats size (tied within each architecture): not marked
    assert "| linear probe | +1.00 | +1.00 | 0.0 points | yes | 4 |" in text
