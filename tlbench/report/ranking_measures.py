"""How well a ranking of sources predicted the fine-tuned results: the transferability
literature's measures, for every estimator and for the baselines an estimator must beat.

Kendall's tau, weighted tau, top-1 regret and top-1 hit; baselines `size`, `imagenet_top1` and
`random control`. With fewer than MIN_SOURCES sources, tau is noise: the table says so.
Why: docs/architecture.md, "Ranking sources".
"""

from __future__ import annotations

import math

MIN_SOURCES = 5
BASELINES = {
    "size": "size (params)",
    "imagenet_top1": "ImageNet top-1",
    "control": "random control",
}


def baseline_scores(rows: list[dict]) -> dict[str, dict[str, float]]:
    """{baseline: {candidate: score}} for the candidates that have it."""
    controls = {
        r["arch"]: r["linear_probe"]
        for r in rows
        if r.get("kind") == "random" and r.get("linear_probe") is not None
    }
    out: dict[str, dict[str, float]] = {b: {} for b in BASELINES}
    for r in rows:
        if r.get("params") is not None:
            out["size"][r["candidate"]] = float(r["params"])
        if r.get("imagenet_top1") is not None:
            out["imagenet_top1"][r["candidate"]] = float(r["imagenet_top1"])
        if r.get("arch") in controls:
            out["control"][r["candidate"]] = float(controls[r["arch"]])
    return out


def measures(scores: list[float], truth: list[float]) -> dict:
    """tau, weighted tau, top-1 regret (points) and hit of `scores` against `truth` (accuracies
    as fractions), over the n candidates that have both; None where n is too small."""
    n = len(scores)
    out = {"n": n, "tau": None, "weighted_tau": None, "regret": None, "hit": None}
    if n == 0:
        return out
    pick = max(range(n), key=lambda i: scores[i])
    out["regret"] = 100 * (max(truth) - truth[pick])
    out["hit"] = truth[pick] == max(truth)
    if n >= 2 and len(set(scores)) > 1 and len(set(truth)) > 1:
        from scipy.stats import kendalltau, weightedtau

        out["tau"] = _finite(kendalltau(scores, truth).statistic)
        out["weighted_tau"] = _finite(weightedtau(scores, truth).statistic)
    return out


def _finite(value) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _cell(value, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def table(per_method: dict[str, dict], labels: dict[str, str]) -> list[str]:
    """The measures table: one row per estimator, then the baselines; an estimator whose weighted
    tau does not beat the size baseline's is marked."""
    size_wt = per_method.get("size", {}).get("weighted_tau")
    lines = [
        "| ranked by | Kendall's tau | weighted tau | top-1 regret | top-1 hit | n |",
        "|---|---|---|---|---|---|",
    ]
    for method, m in per_method.items():
        name = labels.get(method, method)
        if method in BASELINES:
            name = f"*baseline: {BASELINES[method]}*"
        elif size_wt is not None and m["weighted_tau"] is not None and m["weighted_tau"] <= size_wt:
            name += " (does not beat size)"
        hit = "n/a" if m["hit"] is None else ("yes" if m["hit"] else "no")
        lines.append(
            f"| {name} | {_cell(m['tau'], '+.2f')} | {_cell(m['weighted_tau'], '+.2f')} | "
            f"{_cell(m['regret'], '.1f')} points | {hit} | {m['n']} |".replace("n/a points", "n/a")
        )
    return lines


def caveat(n_sources: int) -> str:
    if n_sources < MIN_SOURCES:
        swing = 4 / (n_sources * (n_sources - 1)) if n_sources > 1 else None
        moved = f" (one swapped pair moves Kendall's tau by {swing:.2f})" if swing else ""
        return (
            f"Only {n_sources} sources have both a score and a fine-tuned result: with fewer than "
            f"{MIN_SOURCES}, tau and weighted tau are close to meaningless{moved}; read the regret "
            "and the table itself."
        )
    return f"{n_sources} sources have both a score and a fine-tuned result."
