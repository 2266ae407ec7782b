"""Runs -> configurations: a `Group` is every run of one configuration (its seeds), with mean and
std over the finished ones.

A *configuration* is a run's overrides minus the replicate and neutral keys, plus its summary's
identity fields; an *arm* is one (data, model, strategy, label budget), whose configurations are
the settings a sweep tried for it. Why: docs/architecture.md, "Costs and the verdict".
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field

from tlbench.config.key_roles import IDENTITY as ARM
from tlbench.config.key_roles import SETTING, is_neutral, is_replicate, summary_fields
from tlbench.config.overrides import budget_label
from tlbench.report.runs import Run, num

# Overrides already shown as table columns (so they never repeat in the `config` column).
COLUMN_KEYS = ("data", "model", "strategy", "data.samples_per_class", "data.train_fraction")
# Summary fields that identify a configuration, and the override that sets each.
# The summary fields that define an arm, and the settings' {summary field: override key}, from
# the one table of key roles. Not `weights`: train() rewrites it with the origin it loaded.
IDENTITY = tuple(summary_fields(ARM))  # data, model, strategy, samples_per_class, train_fraction
SETTINGS = summary_fields(SETTING)  # image_size, batch_size, lr, max_epochs
STRATEGY_ORDER = ("transfer", "finetune", "lp_ft", "scratch")


def mean_std(values) -> tuple[float | None, float | None, int]:
    """Mean, sample std (n - 1; None below two values) and count of the finite values."""
    xs = [x for x in (num(v) for v in values) if x is not None]
    if not xs:
        return None, None, 0
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, None, len(xs)
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)), len(xs)


def labels_per_class(run: Run) -> float | None:
    """Training labels per class: the budget itself, or the split size over the class count."""
    spc = num(run.get("samples_per_class"))
    if spc is not None:
        return spc
    sizes = run.get("split_sizes")
    train, classes = (
        (num(sizes.get("train")) if isinstance(sizes, dict) else None),
        num(run.get("num_classes")),
    )
    return train / classes if train and classes else None


@dataclass
class Group:
    """Runs of one configuration (all statuses); statistics come from the `ok` ones."""

    key: tuple
    runs: list[Run]
    extras: dict[str, str] = field(default_factory=dict)  # varying settings beyond the columns

    @property
    def ok(self) -> list[Run]:
        return [r for r in self.runs if r.status == "ok"]

    def first(self, name):
        for r in self.runs:
            if r.get(name) is not None:
                return r.get(name)
        return None

    @property
    def strategy(self) -> str:
        return str(self.first("strategy") or "?")

    @property
    def budget(self) -> str:
        return budget_label(self.first("samples_per_class"), self.first("train_fraction"))

    @property
    def labels_per_class(self) -> float | None:
        return mean_std(labels_per_class(r) for r in self.runs)[0]

    @property
    def config(self) -> str:
        """The setting: what this configuration sets beyond data/model/strategy/budget."""
        return " ".join(f"{k}={v}" for k, v in sorted(self.extras.items()))

    @property
    def arm(self) -> tuple[str, str, str, str]:
        """(data, model, strategy, label budget): the settings of one arm compete on val."""
        return (str(self.first("data")), str(self.first("model")), self.strategy, self.budget)

    @property
    def cell(self) -> tuple[str, str, str]:
        """(data, model, label budget): the strategies of one cell are compared by the verdict."""
        return self.arm[0], self.arm[1], self.arm[3]

    def stat(self, metric: str) -> tuple[float | None, float | None, int]:
        return mean_std(r.get(metric) for r in self.ok)

    def count(self, *statuses: str) -> int:
        return sum(r.status in statuses for r in self.runs)

    @property
    def fit_total(self) -> float:
        """Seconds of `trainer.fit` spent on this configuration: every run, failed ones too."""
        return sum(num(r.get("fit_seconds")) or 0.0 for r in self.runs)

    def by_seed(self, metric: str) -> dict:
        """seed -> the metric of the finished runs that have both (for paired comparisons)."""
        return {
            r.seed: num(r.get(metric))
            for r in self.ok
            if r.seed is not None and num(r.get(metric)) is not None
        }


def config_overrides(run: Run) -> dict[str, str]:
    return {k: v for k, v in run.overrides.items() if not is_replicate(k) and not is_neutral(k)}


def group_runs(runs: list[Run]) -> list[Group]:
    """One group per configuration; the `extras` name what varies beyond the table columns."""
    groups: dict[tuple, Group] = {}
    for run in runs:
        ident = tuple(str(run.get(k)) for k in (*IDENTITY, *SETTINGS))
        key = (ident, tuple(sorted(config_overrides(run).items())))
        if not run.summary:  # no summary: only the overrides say what it was
            key = (("?",) * len(ident), key[1])
        groups.setdefault(key, Group(key, []))
        groups[key].runs.append(run)

    # Which override keys take more than one value within an arm (data, model, strategy, label
    # budget): those are the settings an arm's configurations differ in. A key that only
    # differs between arms (a preset's budget knob, another model's weights or input size in
    # `--across-models`) is part of what the columns already say.
    all_keys = {k for r in runs for k in config_overrides(r)} - set(COLUMN_KEYS)
    arms = defaultdict(list)
    for r in runs:
        if r.summary:
            arms[tuple(str(r.get(k)) for k in IDENTITY)].append(config_overrides(r))
    varying_in = {
        arm: {k for k in all_keys if len({o.get(k) for o in overrides}) > 1}
        for arm, overrides in arms.items()
    }
    varying = set().union(*varying_in.values())
    # A summary setting nobody overrode (e.g. a preset's lr) is shown only where it is needed
    # to tell two otherwise identical rows apart.
    cells = defaultdict(set)
    for r in runs:
        if r.summary:
            cells[tuple(str(r.get(k)) for k in IDENTITY)].add(
                tuple(str(r.get(n)) for n in SETTINGS)
            )
    settings = {
        name
        for i, (name, key) in enumerate(SETTINGS.items())
        if key not in varying and any(len({v[i] for v in vs}) > 1 for vs in cells.values())
    }
    for g in groups.values():
        ref = g.runs[0]
        own = varying_in.get(tuple(str(ref.get(k)) for k in IDENTITY), varying)  # its arm's keys
        extras = {k: config_overrides(ref).get(k, "(default)") for k in own}
        extras.update({name: str(ref.get(name)) for name in settings})
        g.extras = extras
    return sorted(groups.values(), key=_group_order)


def strategy_rank(strategy: str) -> tuple:
    """Sort key: the usual strategies in STRATEGY_ORDER, then the others by name with their
    numbers in numeric order (surgical_2 before surgical_10)."""
    if strategy in STRATEGY_ORDER:
        return (STRATEGY_ORDER.index(strategy), "", -1)
    stem, number = re.fullmatch(r"(.*?)(\d*)", str(strategy)).groups()
    return (len(STRATEGY_ORDER), stem, int(number) if number else -1)


def _group_order(g: Group):
    lpc = g.labels_per_class
    return (
        str(g.first("data")),
        str(g.first("model")),
        lpc if lpc is not None else math.inf,
        strategy_rank(g.strategy),
        g.strategy,
        g.config,
    )


def score_metric(groups: list[Group]) -> tuple[str, str]:
    """The accuracy strategies are compared on: test acc when every finished configuration has
    one (selection itself always uses validation accuracy)."""
    finished = [g for g in groups if g.stat("best_val_acc")[2] or g.stat("test_acc")[2]]
    if finished and all(g.stat("test_acc")[2] for g in finished):
        return "test_acc", "test accuracy"
    return "best_val_acc", "best validation accuracy"
