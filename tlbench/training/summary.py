"""What training puts into a run's `RunSummary` (tlbench.summary_file, the summary.json record):
the fields known before training, each segment's time, what the epochs ran, the run's last write.
`fit_seconds_estimated` is true when part of `fit_seconds` was recovered from metrics.csv (a
segment killed outright, `add_killed_segments`) rather than measured.
"""

from __future__ import annotations

import resource
import shlex
import sys
from pathlib import Path

from omegaconf import DictConfig

from tlbench import atomic, cluster
from tlbench.config import runtime as hydra_runtime
from tlbench.errors import TlbenchError
from tlbench.models import registry
from tlbench.summary_file import RunSummary, write


def _choice(group: str, fallback: str | None) -> str | None:
    """The config-group choice (`strategy=lp_ft` -> 'lp_ft'), falling back to the node's name."""
    return hydra_runtime.choice(group) or fallback


def start(cfg: DictConfig) -> RunSummary:
    """Everything knowable before training; metrics start as None."""
    data = cfg.get("data", {}) or {}
    model = cfg.get("model", {}) or {}
    model_name = registry.spelling(model) if model.get("name") else None
    return RunSummary(
        model=model_name,
        strategy=_choice("strategy", (cfg.get("strategy") or {}).get("name")),
        data=_choice("data", data.get("name")),
        seed=cfg.get("seed"),
        weights=model.get("weights")
        if (cfg.get("strategy") or {}).get("pretrained", True)
        else None,
        samples_per_class=data.get("samples_per_class"),
        train_fraction=data.get("train_fraction"),
        image_size=data.get("image_size"),
        batch_size=data.get("batch_size"),
        lr=(cfg.get("optimizer") or {}).get("lr"),
        max_epochs=(cfg.get("trainer") or {}).get("max_epochs"),
        run_dir=str(cfg.paths.output_dir),
        overrides=hydra_runtime.task_overrides(),
    )


def peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (
        rss / 1024 / 1024 if sys.platform == "darwin" else rss / 1024
    )  # bytes on macOS, KiB on Linux


def write_final(run_dir: str | Path, summary: RunSummary) -> None:
    """The run's last word. A disk that refuses it (full, read-only, no permission) would leave
    summary.json saying `running` while the error pointed at a traceback in it: say in one
    paragraph what the run ended as and why the file could not be updated."""
    try:
        write(run_dir, summary)
    except OSError as exc:
        problem = atomic.disk_problem(exc) or f"{type(exc).__name__}: {exc}"
        ended = f"the run ended `{summary.status}`"
        if summary.error:  # without its own Fix: this paragraph gives one
            ended += f" ({str(summary.error).split(' Fix: ')[0].rstrip('.')})"
        raise TlbenchError(
            f"{ended}, but its summary.json could not be updated ({problem}), so it still says "
            "`running` or an earlier state",
            key="hydra.run.dir",
            value=str(run_dir),
            fix=f"free space on that disk or make the dir writable, then {_resume_hint(run_dir)}",
        ) from exc


def _resume_hint(run_dir: str | Path) -> str:
    command = f"`python -m tlbench {shlex.quote(f'resume={run_dir}')}`"
    if (Path(run_dir) / "checkpoints" / "last.ckpt").is_file():
        return f"{command} continues from checkpoints/last.ckpt, the last complete epoch"
    return f"{command} starts it again (no epoch had been checkpointed yet)"


def disk_error(exc: BaseException, run_dir: str | Path) -> TlbenchError | None:
    """A run stopped by its disk (full, read-only, no permission) as one paragraph; None for
    any other error."""
    problem = atomic.disk_problem(exc)
    if problem is None or isinstance(exc, TlbenchError):
        return None
    name = getattr(exc, "filename", None) or "a file of the run"
    return TlbenchError(
        f"the run stopped: {name}: {problem}",
        key="hydra.run.dir",
        value=str(run_dir),
        fix=f"free space on that disk (or make it writable), then {_resume_hint(run_dir)}",
    )


def checkpoints(trainer) -> dict:
    """`best_checkpoint` (the monitored ModelCheckpoint's best) and `last_checkpoint` (the end of
    the final epoch: LastCheckpoint's file, see tlbench.training.callbacks.last_checkpoint)."""
    best = last = None
    for cb in trainer.checkpoint_callbacks:
        best = best or getattr(cb, "best_model_path", "") or None
        last = getattr(cb, "last_model_path", "") or last
    return {"best_checkpoint": best, "last_checkpoint": last}


def add_segment(
    summary: RunSummary,
    fit_seconds: float,
    epochs: int,
    images: int,
    train_seconds: float,
    checkpoint_seconds: float = 0.0,
):
    """Record one training segment (a run, or one part of a resumed run) and make the top-level
    `fit_seconds` / `checkpoint_seconds` / `train_images_per_second` the totals over all
    segments (a resumed run's cost is all of its parts, not its last one). `fit_seconds`
    excludes writing checkpoints, which `checkpoint_seconds` counts."""
    segment = {
        "fit_seconds": round(fit_seconds, 2),
        "epochs": epochs,
        "images": images,
        "train_seconds": round(train_seconds, 3),
        "checkpoint_seconds": round(checkpoint_seconds, 2),
        **cluster.attempt(),  # on SLURM: which job / requeued attempt ran this part
    }
    summary.segments = [*(summary.segments or []), segment]
    _totals(summary)


def _totals(summary: RunSummary) -> None:
    segments = summary.segments
    summary.fit_seconds = round(sum(s.get("fit_seconds") or 0 for s in segments), 2)
    summary.fit_seconds_estimated = any(s.get("estimated") for s in segments)
    summary.checkpoint_seconds = round(sum(s.get("checkpoint_seconds") or 0 for s in segments), 2)
    timed = [s for s in segments if s.get("images") and s.get("train_seconds")]
    seconds = sum(s["train_seconds"] for s in timed)
    summary.train_images_per_second = (
        round(sum(s["images"] for s in timed) / seconds, 1) if seconds > 0 else None
    )


EPOCH_SECONDS = "time/epoch_seconds"  # metrics.csv's per-epoch wall time (EpochClock)
TRAINABLE = "params/trainable"  # metrics.csv: what trained in the epoch (TransferModule logs it)


def epoch_facts(rows: list[dict], summary: RunSummary) -> dict:
    """What fitting actually did, from metrics.csv's rows (every segment of a resumed run):
    `epoch_seconds`, each epoch's wall time (the report's cost is their median times the epochs,
    so a few epochs slowed by a loaded machine do not scale the whole run, and their spread
    shows); `phases_run`, [{from_epoch, trainable}] at every change of the trainable count
    (lp_ft: the probe, then everything), as the epochs logged it rather than as planned; and
    `trainable_params`, the largest count that trained (the plan's when no epoch ran)."""
    seconds = [r.get(EPOCH_SECONDS) for r in rows]
    phases: list[dict] = []
    known = [p["trainable"] for p in summary.trainable_params_by_phase or []]
    for r in rows:
        if not isinstance(r.get(TRAINABLE), (int, float)):
            continue
        count = _exact(r[TRAINABLE], [*known, summary.total_params or 0])
        if not phases or phases[-1]["trainable"] != count:
            phases.append({"from_epoch": int(r.get("epoch") or 0), "trainable": count})
    facts: dict = {
        "epoch_seconds": [round(t, 3) for t in seconds if isinstance(t, (int, float))],
        "phases_run": phases,
    }
    if phases:
        facts["trainable_params"] = max(p["trainable"] for p in phases)
    return facts


def _exact(logged: float, counts: list[int]) -> int:
    """Lightning logs in float32, exact for integers below 2**24 only: a larger count comes back
    rounded, so take the plan's count it was rounded from."""
    close = [c for c in counts if abs(c - logged) <= abs(logged) * 2**-23]
    return min(close, key=lambda c: abs(c - logged)) if close else round(logged)


def add_killed_segments(summary: RunSummary, rows: list[dict]) -> None:
    """Recover the time of earlier segments killed outright (SIGKILL, power loss, OOM killer),
    which never wrote their `segments` entry: metrics.csv's rows that no recorded segment
    accounts for were trained by them, and each row holds its epoch's wall time. They become one
    segment marked `estimated` (and the summary `fit_seconds_estimated: true`): it is a lower
    bound, without the setup and the unfinished epoch each killed segment also spent.
    `rows`: the finished epochs this segment resumes after (runtime.resume.previous_rows)."""
    recorded = sum(int(s.get("epochs") or 0) for s in summary.segments or [])
    lost = [r for r in rows if (r.get("epoch") or 0) >= recorded]
    if not lost:
        return
    seconds = sum(r.get(EPOCH_SECONDS) or 0.0 for r in lost)
    segment = {"fit_seconds": round(seconds, 2), "epochs": len(lost), "estimated": True}
    summary.segments = [*(summary.segments or []), segment]
    _totals(summary)


def random_backbone(cfg, trainable: int, total: int) -> str | None:
    """The warning for a strategy that starts from pretrained weights on a model without any
    (e.g. model=lenet5 strategy=transfer): a frozen part keeps its random initialisation; with
    every layer trained (finetune) the run is strategy=scratch under another name."""
    strategy, model = cfg.get("strategy") or {}, cfg.get("model") or {}
    if not strategy.get("pretrained", True) or model.get("weights") is not None:
        return None
    name = _choice("strategy", strategy.get("name"))
    fix = "Give model.weights=<a run dir or .ckpt of this model> to start from trained weights"
    if trainable >= total:
        return (
            f"strategy={name} starts from pretrained weights, but model={model.get('name')} has "
            "none (model.weights=null): every layer starts from its random initialisation, so "
            f"this run trains as strategy=scratch does while the report calls it {name}. {fix}, "
            "or use strategy=scratch"
        )
    return (
        f"strategy={name} freezes most of model={model.get('name')}, which has no pretrained "
        "weights (model.weights=null): the frozen part keeps its random initialisation and only "
        f"the rest trains on random features. {fix}, or use strategy=scratch / finetune"
    )
