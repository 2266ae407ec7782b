"""What a reviewer would ask about a result before trusting it: runs that collapsed, settings
with failed seeds, a selected setting at the edge of its grid or still improving at its last
epoch, and sweep jobs that never started. Each check reads only what the runs recorded; a field
an old run dir lacks leaves its check silent.
"""

from __future__ import annotations

import math
from pathlib import Path

from tlbench.report.groups import Group
from tlbench.report.runs import Run, num

DROP = 0.02  # a fall of more than 2 points below the run's own best is a collapse
AFTER_SWITCH, AT_END = "after its switch", "at the end"


def switch_epochs(run: Run) -> list[int]:
    """0-based epochs at which a scheduled strategy (lp_ft, gradual) changed its trainable set,
    from summary.json's `trainable_params_by_phase` ([{epoch, trainable}, ...])."""
    phases = run.get("trainable_params_by_phase")
    if not isinstance(phases, list):
        return []
    epochs = [num(p.get("epoch")) for p in phases if isinstance(p, dict)]
    return sorted(int(e) for e in epochs if e is not None and e > 0)


def collapse(run: Run) -> str | None:
    """AFTER_SWITCH: after a schedule switch validation never came back to within 2 points of
    the best before it (the best checkpoint is the probe's, not the fine-tuned model's).
    AT_END: the final val accuracy is more than 2 points below the run's best. None: neither,
    or the run did not record enough to tell."""
    curve = run.curve  # (1-based epoch, val acc): 0-based switch e -> epochs > e are after it
    for e in switch_epochs(run):
        before = [a for ep, a in curve if ep <= e]
        after = [a for ep, a in curve if ep > e]
        if before and after and max(after) < max(before) - DROP:
            return AFTER_SWITCH
    best = num(run.get("best_val_acc"))
    final = num(run.get("final_val_acc"))
    if curve:
        best = max(best if best is not None else -math.inf, max(a for _, a in curve))
        final = final if final is not None else curve[-1][1]
    if best is not None and final is not None and final < best - DROP:
        return AT_END
    return None


def collapses(g: Group, kind: str | None = None) -> int:
    """Finished runs of `g` that collapsed (of `kind`, or of either kind)."""
    return sum(collapse(r) is not None and kind in (None, collapse(r)) for r in g.ok)


def collapse_note(g: Group) -> str:
    """'collapsed after its switch in 2/2 seeds' (or at the end), '' when no run did."""
    parts = []
    for kind in (AFTER_SWITCH, AT_END):
        if k := collapses(g, kind):
            parts.append(f"collapsed {kind} in {k}/{len(g.ok)} seeds")
    return ", ".join(parts)


def failed(g: Group) -> int:
    return g.count("failed", "unknown")


def failed_note(g: Group) -> str:
    k = failed(g)
    return f"{k} of {len(g.runs)} seed{'s' if len(g.runs) != 1 else ''} failed" if k else ""


RISING_GAIN = 0.005  # half a point: a few hundred validation images move by more epoch to epoch


def rising(means: list[float]) -> bool:
    """Still rising: the best epoch is the last one, and it beats every epoch before the run's
    last quarter by more than RISING_GAIN. A plateau whose last epoch happens to be higher by a
    hair (likely under a cosine schedule, whose last epochs barely move) is not rising."""
    if len(means) < 2 or means.index(max(means)) != len(means) - 1:
        return False
    earlier = means[: -max(1, len(means) // 4)]
    return means[-1] > max(earlier) + RISING_GAIN


def grid_edge(selected: dict, settings: list[dict], skip: tuple[str, ...] = ()) -> list[str]:
    """'optimizer.lr=0.003 is the largest tried': each numeric value of the `selected` setting
    ({key: value}) that is the smallest or largest of what `settings` tried for its key (the
    optimum may lie beyond it); keys in `skip` are judged elsewhere."""
    notes = []
    for key, value in sorted(selected.items()):
        tried = {num(s.get(key)) for s in settings}
        x = num(value)
        if key in skip or x is None or None in tried or len(tried) < 2:
            continue
        if x in (max(tried), min(tried)):
            notes.append(
                f"{key}={value} is the {'largest' if x == max(tried) else 'smallest'} tried"
            )
    return notes


def jobs_expected(root: Path) -> int | None:
    """How many jobs the sweep in `root` launched, from its multirun.yaml (Hydra's basic sweeper:
    the product of the sweep overrides' lengths, command line and `hydra.sweeper.params`).
    None when there is no multirun.yaml or it cannot be read."""
    path = root / "multirun.yaml"
    if not path.is_file():
        return None
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser
        from omegaconf import OmegaConf

        cfg = OmegaConf.load(path)
        task = list(OmegaConf.select(cfg, "hydra.overrides.task") or [])
        params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
        lines = [f"{k}={v}" for k, v in params.items()] + [str(t) for t in task]
        last = {o.get_key_element(): o for o in OverridesParser.create().parse_overrides(lines)}
        count = 1  # a key on the command line replaces the preset's `hydra.sweeper.params`
        for o in last.values():
            if o.is_sweep_override():
                count *= len(list(o.sweep_string_iterator()))
        return count
    except Exception:  # an odd or foreign multirun.yaml: no warning rather than a crash
        return None


def never_started(root: Path, runs: list[Run]) -> str:
    """'4 of 16 jobs of the sweep never started (multirun.yaml lists 16, 12 run dirs found)'."""
    expected = jobs_expected(root)
    if expected is None or len(runs) >= expected:
        return ""
    return (
        f"{expected - len(runs)} of {expected} jobs of the sweep never started (multirun.yaml "
        f"launches {expected}, {len(runs)} run dirs found): the sweep was killed or is still "
        "launching"
    )
