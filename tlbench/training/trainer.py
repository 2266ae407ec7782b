"""The Trainer of one run: the configured callbacks and loggers plus the ones every run has.

`build_trainer` returns the trainer and the `Watchers`, the callbacks whose findings
`tlbench.training.run` reads back into the run's summary (its one writer).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor
from omegaconf import DictConfig

from tlbench import cluster
from tlbench.config.instantiate import instantiate
from tlbench.runtime import resume, signals
from tlbench.runtime.schedule import ScheduleRebuild
from tlbench.training.callbacks import EpochClock, EpochTable
from tlbench.training.callbacks import nonfinite as guards
from tlbench.training.callbacks.checkpoint_io import AtomicCheckpointIO
from tlbench.training.callbacks.weight_drift import WeightDrift


@dataclass
class Watchers:
    """The callbacks every run has whose findings the run reads back into its summary."""

    throughput: EpochClock  # images and seconds of this segment's training steps
    table: EpochTable  # metrics.csv's rows, all segments
    rebuild: ScheduleRebuild  # resume with another max_epochs: the LR schedule follows
    interrupt: signals.InterruptCallback  # SIGINT/SIGTERM: checkpoint, then stop
    drift: WeightDrift  # what trained: per-stage weight drift, BN statistics


def build_trainer(cfg: DictConfig, run_dir: Path, trap, precision: str, deterministic=None):
    """The Trainer with the configured callbacks and loggers plus the ones every run has;
    returns (trainer, Watchers, checkpoint to resume from). `deterministic`: replaces
    trainer.deterministic (tlbench.training.device.deterministic_for), None keeps it."""
    table = EpochTable(run_dir / "metrics.csv")
    ckpt_path = resume.checkpoint(cfg)  # resume=<run dir>: its last.ckpt; else cfg.ckpt_path
    table.rows = resume.previous_rows(cfg, table.path, ckpt_path)  # finished epochs' rows
    watch = Watchers(
        throughput=EpochClock(),
        table=table,
        rebuild=ScheduleRebuild(),
        interrupt=signals.InterruptCallback(trap or signals.Trap(), run_dir / "checkpoints", table),
        drift=WeightDrift(),
    )
    callbacks = [
        instantiate(node, f"callbacks.{name}")
        for name, node in (cfg.get("callbacks") or {}).items()
        if node is not None
    ]
    loggers = [
        instantiate(node, f"logger.{name}", **resume.logger_kwargs(cfg, node, ckpt_path))
        for name, node in (cfg.get("logger") or {}).items()
        if node is not None
    ]
    if not loggers:  # Lightning refuses an LR monitor without a logger; metrics.csv has the LRs
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    with expected_lightning_notices():  # srun's, from the cluster environment's detection
        trainer: L.Trainer = instantiate(
            cfg.trainer,
            "trainer",
            callbacks=[
                *callbacks,
                watch.throughput,
                watch.drift,  # before the table: its epoch-end drift/<stage> lands in the same row
                watch.table,
                guards.NonFiniteLoss(),
                watch.rebuild,
                watch.interrupt,
            ],
            logger=loggers or False,
            precision=precision,
            **({} if deterministic is None else {"deterministic": deterministic}),
            plugins=[AtomicCheckpointIO(), *_cluster_plugins()],  # .ckpt written beside, renamed
        )
    return trainer, watch, ckpt_path


def _cluster_plugins() -> list:
    """Inside a SLURM job: Lightning's SLURMEnvironment as it would detect it, with its
    auto-requeue off. Lightning's requeue (SIGUSR1, hpc_ckpt_*.ckpt restored on the next start)
    would compete with tlbench's (SIGUSR2 -> last.ckpt, runtime.signals), and only one may own
    a preempted job."""
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    return [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []


@contextlib.contextmanager
def expected_lightning_notices():
    """Silence Lightning's notices about what tlbench does on purpose, only while it builds the
    Trainer and trains: frozen parts are in eval mode (tlbench.training.strategies), the module
    owns the `on_after_batch_transfer` hook. And "The `srun` command is available ... but not
    used", printed wherever SLURM's tools are installed: its hint matters inside an allocation
    (tasks started without srun hang), so it is kept there and silenced on a login node. Also
    Lightning's own noise, nothing a user can act on: its advert for litlogger on every Trainer,
    and torch's deprecation of a call inside Lightning (`isinstance(treespec, LeafSpec)`)."""
    with warnings.catch_warnings(), _without_advert():
        if cluster.job_id() is None:
            warnings.filterwarnings("ignore", message="The `srun` command is available")
        warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
        warnings.filterwarnings("ignore", message=r"You have overridden `on_after_batch_transfer`")
        # A non-empty checkpoints/ only reaches fit when a run is resumed: run dirs are guarded
        warnings.filterwarnings(
            "ignore", message=r"Checkpoint directory .* exists and is not empty"
        )
        warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)`")
        yield


@contextlib.contextmanager
def _without_advert():
    """Lightning logs its "Tip: ... try installing litlogger" through its rank-zero logger."""
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    keep = lambda record: "litlogger" not in record.getMessage()  # noqa: E731
    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)
