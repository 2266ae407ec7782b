"""What one `python -m tlbench` job does around `train(cfg)`: interrupts end the process (and a
sweep) with their own exit code; the finished run's summary is printed. Errors are the entry
point's business (tlbench.cli: one policy for every entry point)."""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig

from tlbench import cluster
from tlbench.config.overrides import sweep_of
from tlbench.runtime import distributed, signals
from tlbench.summary_file import RunSummary
from tlbench.training.run import train


def _print_summary(s: RunSummary, run_dir: Path) -> None:
    """`run_dir`: the job's own dir (a skipped job's summary may be a hand-made or older file)."""

    def pct(v):
        return "n/a" if v is None else f"{100 * v:.1f}%"

    pngs = [n for n in ("confusion_matrix.png", "predictions.png") if (run_dir / n).is_file()]

    lines = [
        f"tlbench run {s.status}: model={s.model} strategy={s.strategy} data={s.data} seed={s.seed}",
        f"  val acc best {pct(s.best_val_acc)}  final {pct(s.final_val_acc)}   test acc {pct(s.test_acc)}",
        f"  fit {s.fit_seconds} s over {s.epochs} epochs, {s.train_images_per_second} train images/s, "
        f"precision {s.precision}",
        f"  trainable params {s.trainable_params:,} / {s.total_params:,}"
        if s.total_params and s.trainable_params is not None
        else "",
        f"  outputs: {run_dir}  (summary.json, metrics.csv, checkpoints/, tensorboard/"
        f"{''.join(', ' + n for n in pngs)})",
        f"  dashboards: tensorboard --logdir {sweep_of(run_dir) or run_dir}",  # this run or sweep
    ]
    print("\n".join(line for line in lines if line), flush=True)


def run_job(cfg: DictConfig) -> RunSummary:
    signals.BETWEEN_RUNS.install()  # a signal outside the run never kills finished work (143)
    cluster.fit_threads_to_allocation()  # SLURM: no more threads than the job's CPUs
    try:
        s = train(cfg)
    except signals.INTERRUPTS as exc:  # a sweep stops too: the exit code says why
        print(
            f"\ntlbench: {signals.describe(exc, cfg.paths.output_dir)}\n",
            file=sys.stderr,
            flush=True,
        )
        signals.hand_over(exc)  # SLURM preemption: submitit requeues the job (and exits)
        raise SystemExit(signals.exit_code(exc)) from None
    if distributed.is_rank_zero():  # a skipped job's too: what the completed run got
        _print_summary(s, Path(cfg.paths.output_dir))
    return s
