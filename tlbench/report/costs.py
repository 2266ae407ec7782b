"""What a run, a setting and a search cost: measured, with their noise.

A run costs its median epoch time x its epochs plus its own named one-offs, and is flagged as
noisy when its epoch times vary by more than `NOISY`; shared one-offs (feature extraction, the
precision probe) count once per key. A setting costs its mean run cost plus the extraction one
run needs. Runs without `epoch_seconds` cost their `fit_seconds`.
Why: docs/architecture.md, "Costs and the verdict".
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

from tlbench.report.groups import Group, mean_std
from tlbench.report.runs import Run, num

NOISY = 2.0  # max / min epoch time above which a run's timings are flagged
# ...unless its slowest epoch is this short: sub-second epochs (cached heads) swing several-fold
# with per-epoch fixed work (checkpoint, logging), not with load, and cost nothing either way.
NOISE_FLOOR_S = 0.5
EXTRACTION, PROBE, CACHE_READ = "feature extraction", "precision probe", "feature cache read"


@dataclass
class RunCost:
    training: float | None  # median epoch seconds x epochs (fit_seconds for older runs)
    own: dict[str, float] = field(default_factory=dict)  # one-offs this run paid, by name
    shared: dict[str, tuple[str, float]] = field(default_factory=dict)  # name -> (key, seconds)
    spread: float | None = None  # max / min epoch time (None below two timed epochs)
    slowest: float | None = None  # the slowest epoch the spread counts
    measured: bool = False  # from epoch_seconds (else fit_seconds)

    @property
    def total(self) -> float | None:
        return None if self.training is None else self.training + sum(self.own.values())

    @property
    def noisy(self) -> bool:
        return (
            self.spread is not None and self.spread > NOISY and (self.slowest or 0) >= NOISE_FLOOR_S
        )


def _times(run: Run) -> list[float]:
    raw = run.get("epoch_seconds")
    times = [num(t) for t in raw] if isinstance(raw, list) else []
    return [t for t in times if t is not None and t > 0]


def run_cost(run: Run) -> RunCost:
    times = _times(run)
    if not times:
        return RunCost(num(run.get("fit_seconds")))
    epochs = num(run.get("epochs")) or len(times)
    checked = times[1:] if len(times) >= 3 else times  # the first epoch warms up
    cost = RunCost(
        statistics.median(times) * epochs,
        spread=max(checked) / min(checked) if len(checked) > 1 else None,
        slowest=max(checked),
        measured=True,
    )
    if run.get("feature_cache_hit") is True and num(run.get("feature_cache_seconds")) is not None:
        cost.own[CACHE_READ] = num(run.get("feature_cache_seconds"))
    extracted = run.get("feature_extraction_seconds")
    if run.get("feature_cache") and isinstance(extracted, dict):
        seconds = sum(num(v) or 0.0 for k, v in extracted.items() if k != "test")
        cost.shared[EXTRACTION] = (str(run.get("feature_cache")), seconds)
    probe = run.get("precision_probe")
    if isinstance(probe, dict) and not probe.get("cached") and num(probe.get("seconds")):
        cost.shared[PROBE] = (str(probe.get("file")), num(probe.get("seconds")))
    return cost


def one_offs(runs: Iterable[Run]) -> dict[str, float]:
    """Shared one-offs of these runs by name, each key counted once (in key order)."""
    keyed: dict[str, dict[str, float]] = {}
    for r in runs:
        for name, (key, seconds) in run_cost(r).shared.items():
            keyed.setdefault(name, {}).setdefault(key, seconds)
    return {name: sum(by_key.values()) for name, by_key in keyed.items()}


def extraction_per_run(runs: list[Run]) -> float:
    """The extraction one run of these needs: the mean over their cache keys (0 without)."""
    keys = {}
    for r in runs:
        if EXTRACTION in (shared := run_cost(r).shared):
            keys.setdefault(*shared[EXTRACTION])
    return sum(keys.values()) / len(keys) if keys else 0.0


def setting_cost(g: Group) -> tuple[float | None, float | None, int]:
    """(mean, std, n) over a setting's finished runs of their cost, plus the extraction one run
    needs (the std is the runs'; the extraction is one measurement per key)."""
    m, s, n = mean_std(run_cost(r).total for r in g.ok)
    return (None if m is None else m + extraction_per_run(g.ok)), s, n


def search_cost(settings: list[Group]) -> float:
    """Every run of every setting (failed ones too) plus each shared one-off once per key."""
    runs = [r for g in settings for r in g.runs]
    return sum(run_cost(r).total or 0.0 for r in runs) + sum(one_offs(runs).values())


def noisy_runs(g: Group) -> list[Run]:
    return [r for r in g.ok if run_cost(r).noisy]


def noise_note(g: Group) -> str:
    """'timings noisy in 2/3 runs (epoch times up to 3.4x apart: machine loaded?)', or ''."""
    noisy = noisy_runs(g)
    if not noisy:
        return ""
    worst = max(run_cost(r).spread for r in noisy)
    return (
        f"timings noisy in {len(noisy)}/{len(g.ok)} runs (epoch times up to {worst:.1f}x "
        "apart: machine loaded?)"
    )


def one_off_text(runs: list[Run]) -> str:
    """'feature extraction 6.7 s, precision probe 2.1 s' (each once per key), or ''."""
    return ", ".join(f"{name} {seconds:.1f} s" for name, seconds in one_offs(runs).items())
