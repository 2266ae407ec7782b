"""The ranking's outputs: ranking.json (the contract ranking_check reads), ranking.csv, ranking.md.

Candidates are ordered best first by `rank_by` (default: the linear probe's validation accuracy,
the one measured, held-out number); every metric also gets its own rank column.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from tlbench import atomic

DATA_KEYS = (
    "classes",
    "samples_per_class",
    "train_fraction",
    "subset_seed",
    "split_seed",
    "image_size",
)
COLUMNS = {  # metric -> (table header, is an accuracy)
    "linear_probe": ("linear probe val acc", True),
    "knn": ("kNN val acc", True),
    "logme": ("LogME", False),
    "hscore": ("H-score", False),
    "transrate": ("TransRate", False),
    "leep": ("LEEP", False),
    "nce": ("NCE", False),
}
FILES = ("ranking.json", "ranking.csv", "ranking.md")


def _order(rows: list[dict], metric: str) -> list[dict]:
    scored = [r for r in rows if r.get(metric) is not None]
    return sorted(scored, key=lambda r: -r[metric])


def verdict(rows: list[dict]) -> str:
    """One sentence per pretrained source that has its `random:` control in the list."""
    controls = {r["arch"]: r for r in rows if r["kind"] == "random" and r["status"] == "ok"}
    lines = []
    for r in rows:
        if r["kind"] == "random" or r["status"] != "ok":
            continue
        ctl = controls.get(r["arch"])
        if ctl is None:
            lines.append(
                f"{r['candidate']}: add random:{r['arch']} to see whether its pretraining helps."
            )
            continue
        gap = 100 * (r["linear_probe"] - ctl["linear_probe"])
        worth = (
            "looks worth it" if gap > 1 else "does not look worth it" if gap < -1 else "is a wash"
        )
        lines.append(
            f"Pretraining {worth} for {r['candidate']}: its frozen features give a linear probe "
            f"{gap:+.1f} points vs {ctl['candidate']}, the same architecture randomly initialised "
            f"({100 * r['linear_probe']:.1f}% vs {100 * ctl['linear_probe']:.1f}%)."
        )
    return " ".join(lines) or "No pretrained candidate to compare with a random control."


def assemble(rows: list[dict], data: dict, rank_by: str, precision: str, device: str) -> dict:
    ok = [r for r in rows if r["status"] == "ok"]
    for metric in COLUMNS:
        for i, r in enumerate(_order(ok, metric), 1):
            r.setdefault("ranks", {})[metric] = i
    ordered = _order(ok, rank_by)
    ordered += [r for r in rows if r not in ordered]  # failed / unscored last
    best = ordered[0] if ordered and ordered[0]["status"] == "ok" else None
    return {
        "data": data,
        "rank_by": rank_by,
        "precision": precision,
        "device": device,
        "recommended": best["candidate"] if best else None,
        "verdict": verdict(rows),
        "candidates": ordered,
    }


def _fmt(value, accuracy: bool) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.1f}%" if accuracy else f"{value:.3f}"


def _features_cell(r: dict) -> str:
    s = r["seconds"].get("features", 0.0)
    return f"{s:.1f} (cached)" if r.get("cache_hit") else f"{s:.1f}"


def table(result: dict) -> list[str]:
    heads = [COLUMNS[m][0] for m in COLUMNS]
    lines = [
        "| # | candidate | dim | " + " | ".join(heads) + " | features s | estimators s |",
        "|---" * (len(heads) + 5) + "|",
    ]
    for i, r in enumerate(result["candidates"], 1):
        if r["status"] != "ok":
            lines.append(f"| {i} | {r['candidate']} | failed: {r.get('error', '')} |")
            continue
        cells = [_fmt(r.get(m), acc) for m, (_, acc) in COLUMNS.items()]
        rest = sum(v for k, v in r["seconds"].items() if k != "features")
        name = r["candidate"] + (" (added control)" if r.get("added") else "")
        lines.append(
            f"| {i} | {name} | {r['feature_dim']} | "
            + " | ".join(cells)
            + f" | {_features_cell(r)} | {rest:.2f} |"
        )
    return lines


def markdown(result: dict) -> str:
    d = result["data"]
    budget = d.get("samples_per_class") or d.get("train_fraction") or "all"
    sizes = d.get("sizes", {})
    lines = [
        f"# Ranking of {len(result['candidates'])} candidate sources for {d.get('name')}",
        "",
        f"Labels per class: {budget}; classes: {d.get('classes') or 'all'} ({d.get('num_classes')}); "
        f"train {sizes.get('train')} / val {sizes.get('val')} images; image size "
        f"{d.get('image_size')}; ordered by {COLUMNS[result['rank_by']][0]}; features in "
        f"{result['precision']} on {result['device']}.",
        "",
        *table(result),
        "",
        f"Recommended source: **{result['recommended']}**. {result['verdict']}",
        "",
        "Accuracies: held-out validation split, fixed-budget logistic regression / cosine 5-NN on "
        "the train split's frozen features. Estimators (higher is better) use the train split "
        "only; LEEP and NCE need the source's own classifier (n/a without one).",
    ]
    if "seconds_total" in result:
        lines.append(f"Total time: {result['seconds_total']:.1f} s.")
    return "\n".join(lines) + "\n"


def csv_text(result: dict) -> str:
    fields = ["rank", "candidate", "kind", "arch", "status", "feature_dim", "n_train", "n_val"]
    fields += [*COLUMNS, *(f"seconds_{m}" for m in ("features", *COLUMNS)), "cache_hit", "weights"]
    fields += ["params", "imagenet_top1", "added"]  # baselines; added = a random control added
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for i, r in enumerate(result["candidates"], 1):
        seconds = {f"seconds_{k}": v for k, v in r.get("seconds", {}).items()}
        writer.writerow({**r, **seconds, "rank": i})
    return buf.getvalue()


def write(run_dir: Path, result: dict) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    texts = {
        "ranking.json": json.dumps(result, indent=2, default=str) + "\n",
        "ranking.csv": csv_text(result),
        "ranking.md": markdown(result),
    }
    for name, text in texts.items():
        atomic.write_text(run_dir / name, text)  # a reader (ranking_check) never sees half a file
