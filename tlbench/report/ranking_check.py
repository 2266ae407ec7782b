"""The shortcut checked against reality: rankings beside the fine-tuned results of the same sweep.

For every `ranking.json` under the report root, finished runs on the same data are matched to its
candidates; a candidate's actual accuracy is the mean test accuracy of its best setting, selected
on validation as the report selects. Each estimator's scores are set beside it (Kendall's tau and
the measures of tlbench.report.ranking_measures). Why: docs/architecture.md, "Ranking sources".
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from omegaconf import OmegaConf

from tlbench.config.key_roles import is_neutral, is_replicate
from tlbench.report import health, ranking_measures, readings
from tlbench.report.groups import Group
from tlbench.report.runs import Run, load_run
from tlbench.summary_file import FIELDS, RunSummary

RANKING_FILE = "ranking.json"
METRICS = {  # ranking.json key -> column header
    "linear_probe": "linear probe",
    "knn": "kNN",
    "logme": "LogME",
    "hscore": "H-score",
    "transrate": "TransRate",
    "leep": "LEEP",
    "nce": "NCE",
}
MATCHED_DATA = ("classes", "samples_per_class", "train_fraction", "subset_seed", "split_seed")


def _walk(root: Path, name: str) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if name in filenames:
            found.append(Path(dirpath) / name)
    return found


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _run_data(run: Run) -> dict:
    """The data a run used: its .hydra/config.yaml when present, else summary.json's fields."""
    data = {"name": run.get("data")}
    data.update({k: run.get(k) for k in MATCHED_DATA if k in FIELDS})  # null: the whole split
    run_dir = run.dir
    cfg_path = run_dir / ".hydra" / "config.yaml"
    if cfg_path.is_file():
        node = OmegaConf.load(cfg_path).get("data") or {}
        data["name"] = node.get("name", data["name"])
        for k in MATCHED_DATA:
            if k in node:
                data[k] = (
                    OmegaConf.to_container(node[k]) if OmegaConf.is_config(node[k]) else node[k]
                )
    return data


def finished_runs(root: Path) -> list[dict]:
    """The finished runs with a test accuracy, as summary.json's fields plus `_data` (what
    `_same_data` matches), `_dir` and `_curve` (val/acc per epoch, for the reading)."""
    runs = []
    for path in _walk(root, "summary.json"):
        run = load_run(path.parent)
        if run.status == "ok" and run.get("test_acc") is not None:
            runs.append({**run.summary.to_dict(), "_data": _run_data(run), "_dir": str(run.dir)})
            runs[-1]["_curve"] = run.curve
    return runs


def _same_data(ranking_data: dict, run_data: dict) -> bool:
    if ranking_data.get("name") != run_data.get("name"):
        return False
    return all(ranking_data.get(k) == run_data.get(k) for k in MATCHED_DATA if k in run_data)


def _checkpoint_of(path) -> str:
    p = Path(str(path))
    for sub in ("checkpoints/best.ckpt", "checkpoints/last.ckpt"):
        if (p / sub).is_file():
            return str((p / sub).resolve())
    return str(p.resolve())


def _is_path(weights) -> bool:
    return weights is not None and ("/" in str(weights) or str(weights).endswith((".ckpt", ".pth")))


def _weights(run: dict) -> str | None:
    """The run's weights as a config value: summary.json holds the origin the run reported
    ("random", "file:<ckpt>", "package:...", "torchvision:IMAGENET1K_V1") or the config's value."""
    w = run.get("weights")
    if w is None or w == "random":
        return None
    return str(w)[len("file:") :] if str(w).startswith("file:") else str(w)


def matches(candidate: dict, run: dict) -> bool:
    """Whether `run` fine-tuned from the source `candidate` stands for."""
    weights, kind = _weights(run), candidate["kind"]
    if kind == "checkpoint":
        source = candidate.get("source_path") or candidate["spec"]
        return _is_path(weights) and _checkpoint_of(weights) == _checkpoint_of(source)
    if run.get("model") != candidate["arch"]:
        return False
    if kind == "random":
        return weights is None
    return weights is not None and not _is_path(weights)


def _setting(run: dict) -> tuple[str, str]:
    """(strategy, the overrides that are neither replicates nor neutral): one setting."""
    keep = []
    for o in run.get("overrides") or []:
        k = str(o).partition("=")[0].lstrip("+~")
        if not is_replicate(k) and not is_neutral(k) and not k.startswith(("model", "data")):
            keep.append(str(o))
    return str(run.get("strategy")), " ".join(sorted(keep))


def _val(rs: list[dict]) -> float:
    vals = [float(r["best_val_acc"]) for r in rs if r.get("best_val_acc") is not None]
    return sum(vals) / len(vals) if vals else float("-inf")


def grid_edge(chosen: tuple[str, str], settings) -> list[str]:
    """health.grid_edge for the selected (strategy, overrides) among its strategy's settings.
    Epochs are left to the curve reading, which says whether more would pay off."""
    strategy, config = chosen

    def values(overrides: str) -> dict:
        return dict(token.partition("=")[::2] for token in overrides.split())

    tried = [values(other) for strat, other in settings if strat == strategy]
    return health.grid_edge(values(config), tried, skip=("trainer.max_epochs",))


def select(candidate: dict, runs: list[dict]) -> dict | None:
    """What starting from this source got: among its runs' settings (strategy and overrides),
    the one with the best mean validation accuracy -- selected on validation, as the report
    selects, never on test -- with its mean test accuracy and what stands behind that number:
    its seeds, the strategies tried, and the report's reading of its mean validation curve."""
    settings: dict[tuple[str, str], list[dict]] = {}
    for r in runs:
        if matches(candidate, r):
            settings.setdefault(_setting(r), []).append(r)
    if not settings:
        return None
    (strategy, config), chosen = max(settings.items(), key=lambda kv: _val(kv[1]))
    tests = [float(r["test_acc"]) for r in chosen]
    seeds = {r["seed"] for r in chosen if r.get("seed") is not None}
    group = Group(
        (),
        [
            Run(
                Path(r.get("_dir", ".")), RunSummary.from_dict(r), "ok", curve=r.get("_curve") or []
            )
            for r in chosen
        ],
    )
    epochs, means, stds = readings.mean_curve(group)  # the report's curve, and its reading
    return {
        "test": sum(tests) / len(tests),
        "strategy": strategy,
        "config": config,
        "runs": len(tests),
        "seeds": len(seeds) or len(tests),
        "tried": sorted({k[0] for k in settings}),
        "settings": len(settings),
        "rising": health.rising(means),
        "edge": grid_edge((strategy, config), settings),
        "curve": readings.curves_reading([(group, epochs, means, stds)]) if epochs else None,
    }


def actual(candidate: dict, runs: list[dict]) -> tuple[float, str, int] | None:
    """(mean test accuracy, strategy, runs) of the setting `select` picks, or None."""
    s = select(candidate, runs)
    return None if s is None else (s["test"], s["strategy"], s["runs"])


def _fmt(metric: str, value) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.1f}%" if metric in ("linear_probe", "knn") else f"{value:.3f}"


def check(ranking: dict, runs: list[dict]) -> dict:
    """Candidates with their actual accuracy, and tau per metric."""
    same = [r for r in runs if _same_data(ranking.get("data", {}), r["_data"])]
    rows = []
    for c in ranking.get("candidates", []):
        if c.get("status") == "ok":
            s = select(c, same)
            rows.append({**c, "selected": s, "actual": s and (s["test"], s["strategy"], s["runs"])})
    have = [r for r in rows if r["actual"] is not None]
    taus, per_method = {}, {}
    for metric in METRICS:
        pairs = [(r[metric], r["actual"][0]) for r in have if r.get(metric) is not None]
        per_method[metric] = m = ranking_measures.measures(*_columns(pairs))
        taus[metric] = (m["tau"], m["n"])  # the candidate table's own row
    for baseline, scores in ranking_measures.baseline_scores(rows).items():
        pairs = [(scores[r["candidate"]], r["actual"][0]) for r in have if r["candidate"] in scores]
        if pairs:
            per_method[baseline] = ranking_measures.measures(*_columns(pairs))
    return {"rows": rows, "tau": taus, "measures": per_method, "matched": len(have)}


def _columns(pairs: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _section_for(path: Path, root: Path, ranking: dict, runs: list[dict]) -> list[str]:
    result = check(ranking, runs)
    if result["matched"] == 0:
        return []
    rel = path.parent.relative_to(root) if path.parent != root else Path(".")
    d = ranking.get("data", {})
    lines = [
        f"### {rel}: {d.get('name')}, {d.get('samples_per_class') or d.get('train_fraction') or 'all'} "
        f"labels per class, classes {d.get('classes') or 'all'}",
        "",
        "| candidate | actual test acc (best strategy, runs) | "
        + " | ".join(METRICS.values())
        + " |",
        "|---" * (len(METRICS) + 2) + "|",
    ]
    for r in sorted(result["rows"], key=lambda r: -(r["actual"] or (-1.0, "", 0))[0]):
        a = r["actual"]
        truth = f"{100 * a[0]:.1f}% ({a[1]}, {a[2]})" if a else "no finished run"
        cells = [f"{_fmt(m, r.get(m))} (#{r.get('ranks', {}).get(m, '-')})" for m in METRICS]
        lines.append(f"| {r['candidate']} | {truth} | " + " | ".join(cells) + " |")
    taus = [
        f"{t:+.2f} (n={n})" if t is not None else f"n/a (n={n})" for t, n in result["tau"].values()
    ]
    lines.append("| **Kendall's tau vs actual** | | " + " | ".join(taus) + " |")
    lines += ["", *evidence(result["rows"]), "", ranking_measures.caveat(result["matched"]), ""]
    lines += ranking_measures.table(result["measures"], METRICS)
    return lines + [""]


def evidence(rows: list[dict]) -> list[str]:
    """Per source, what its actual came from: the selected strategy and setting, the strategies
    tried, the seeds (warned below 2), the report's curve reading (warned while rising) and the
    values at the edge of their grid."""
    chosen = [r["selected"] for r in rows if r.get("selected")]
    tokens = [set(s["config"].split()) for s in chosen]
    common = set.intersection(*tokens) if len(tokens) > 1 else set()
    lines = ["What each actual stands on (selected on validation):", ""]
    if common:
        lines += [f"Every actual shares {' '.join(sorted(common))}.", ""]
    for r in rows:
        if not (s := r.get("selected")):
            continue
        own = [t for t in s["config"].split() if t not in common and not t.startswith("strategy=")]
        setting = " ".join([s["strategy"], *own])
        text = (
            f"- {r['candidate']}: {setting}, the best of {s['settings']} setting(s) of "
            f"{', '.join(s['tried'])}; {s['seeds']} seed(s)."
        )
        if s["seeds"] < 2:
            text += " **Fewer than 2 seeds: one draw, its gap to the others may be noise.**"
        if s["curve"]:
            text += f" Validation curve: {s['curve']}"
        if s.get("edge"):
            text += f" At its grid's edge: {'; '.join(s['edge'])} (the best may lie beyond)."
        if s["rising"]:
            text += " **So this actual may understate the source.**"
        lines.append(text)
    return lines


def section(root: str | Path) -> list[str]:
    """The report's "Ranking vs fine-tuned results" section; [] when nothing matches."""
    root = Path(root)
    rankings = [(p, _read_json(p)) for p in _walk(root, RANKING_FILE)]
    rankings = [(p, r) for p, r in rankings if r]
    if not rankings:
        return []
    runs = finished_runs(root)
    body = [line for p, r in rankings for line in _section_for(p, root, r, runs)]
    if not body:
        return []
    return [
        "## Ranking vs fine-tuned results",
        "",
        "Each estimator's score (its rank among the candidates in brackets) beside the test "
        "accuracy actually reached from that source in this sweep. Kendall's tau compares the "
        "orders over the candidates with both: 1 = the shortcut ordered them as fine-tuning did, "
        "0 = no relation, -1 = reversed. With few candidates one swapped pair moves tau a lot. "
        "Below each table, the field's measures (weighted tau weighs the top of the ranking more; "
        "top-1 regret is what following the ranking's first choice cost) for every estimator "
        "and for the baselines it must beat (model size, ImageNet top-1, random-weights control). "
        "Under each table, what each actual stands on: seeds, strategies, validation curve.",
        "",
        *body,
    ]
