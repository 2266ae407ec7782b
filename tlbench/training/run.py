"""`train(cfg) -> summary`: datamodule -> model -> callbacks/loggers -> trainer -> fit -> test.

This is the only module that wires data and models together (classes, preprocessing).
`tlbench.cli.train_main` is the `python -m tlbench` entry point around it.
"""

from __future__ import annotations

import logging
import time
import traceback
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig

from tlbench import atomic, summary_file
from tlbench.errors import TlbenchError
from tlbench.runtime import distributed, resume, signals
from tlbench.summary_file import RunSummary
from tlbench.training import feature_cache, hparams, precision_probe, strategies
from tlbench.training import summary as run_summary
from tlbench.training.build import build_run
from tlbench.training.callbacks import EpochTable, checkpoint_io
from tlbench.training.device import (
    apply_speed_settings,
    deterministic_for,
    expected_ranks,
    rank_device,
    release_memory,
    reset_peak_memory,
)
from tlbench.training.module import TransferModule
from tlbench.training.trainer import build_trainer, expected_lightning_notices

log = logging.getLogger("tlbench")


def train(cfg: DictConfig) -> RunSummary:
    """Run one experiment; always writes `summary.json` (status ok / failed / interrupted)."""
    run_dir = Path(cfg.paths.output_dir)
    done = resume.completed(cfg, run_dir)  # skip_completed=true: nothing trained or written
    if done is not None:
        return done
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = resume.lock(run_dir)  # a second process into a live run dir is refused here
    reset_peak_memory()  # cuda_max_allocated_mb: this run's peak, not the sweep's so far
    summary = run_summary.start(cfg)
    summary.update(resume.carried(cfg))  # a continued run: the earlier segments' times
    rank_zero = distributed.is_rank_zero()  # DDP: only rank 0 writes summary.json
    if rank_zero:  # a run killed by SIGKILL shows "running", never a stale "ok"
        atomic.remove_orphans(run_dir, run_dir / "checkpoints", legacy=("last.ckpt.tmp",))
        run_summary.write(run_dir, summary)
    try:
        with signals.Trap() as trap:  # SIGINT/SIGTERM: checkpoint + status interrupted
            _train(cfg, summary, run_dir, trap)
        summary.status = "ok"
        resume.finish(run_dir, summary)  # an earlier segment's interrupted.ckpt is stale now
    except signals.INTERRUPTS as exc:
        summary.update(
            status="interrupted",
            error=signals.describe(exc, run_dir),
            exit_code=signals.exit_code(exc),
        )
        raise
    except BaseException as exc:
        disk = run_summary.disk_error(exc, run_dir)  # a full or read-only disk: one paragraph
        summary.update(
            status="failed",
            error=str(disk or exc) or type(exc).__name__,
            error_type=type(exc).__name__,
            traceback=None if isinstance(exc, TlbenchError) else traceback.format_exc(),
            # no segment of fit started in this dir (fresh run, e.g. an empty class folder):
            # the corrected command may reuse the dir without overwrite=true (rundir.state)
            failed_before_training=not summary.segments,
        )
        release_memory(exc)  # the traceback's frames hold the module: the next job needs room
        if disk is not None:
            raise disk from exc
        raise
    finally:
        summary.peak_rss_mb = round(run_summary.peak_rss_mb(), 1)
        if torch.cuda.is_available():
            summary.cuda_max_allocated_mb = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        distributed.finish()
        try:
            if rank_zero:  # a refused write is one paragraph, never a pointer to this file
                run_summary.write_final(run_dir, summary)
        finally:
            lock.release()
            release_memory()  # nothing of this run stays on the GPU (or in RAM) for the next job
    return summary


def _train(cfg: DictConfig, summary: RunSummary, run_dir: Path, trap=None) -> None:
    """Wire, fit, test: each step a function below. This module is the summary's one writer:
    callbacks leave their findings on themselves and are read back here, also when a segment
    ends by an interruption or an error."""
    datamodule, module = build_run(cfg)
    precision = _record_model(cfg, datamodule, module, summary)
    datamodule, cache_seconds = _maybe_cache_features(
        cfg, module, datamodule, precision, summary, stop=trap.check if trap else None
    )
    if summary.segments:  # resumed: the first segment counted the features' cost
        cache_seconds = summary.feature_cache_seconds
    summary.update(apply_speed_settings(cfg, module, datamodule))  # workers, compile, cuDNN
    deterministic, warning = deterministic_for(cfg, module)  # CUDA: layers with no such kernel
    if warning:
        log.warning(warning)
        summary.warnings.append(warning)
    trainer, watch, ckpt_path = build_trainer(cfg, run_dir, trap, precision, deterministic)
    if summary.cudnn_benchmark is not None:  # deterministic mode turns it off: the value
        summary.cudnn_benchmark = torch.backends.cudnn.benchmark  # in effect, not the asked
    for lg in trainer.loggers:
        lg.log_metrics(
            {
                "params/trainable": summary.trainable_params,
                "params/total": summary.total_params,
            },
            step=0,
        )
    if resume.source(cfg) is not None:
        summary.resumed_from = ckpt_path
        run_summary.add_killed_segments(summary, watch.table.rows)  # SIGKILLed parts' time
    distributed.prepare_children()  # DDP inside a sweep: children re-run this job only
    start, rows_before = time.perf_counter(), len(watch.table.rows)
    try:
        try:
            with expected_lightning_notices():
                trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        finally:  # also for an interrupted or failed segment; cached features are part of fitting
            ckpt = checkpoint_io.seconds_of(trainer)  # writing checkpoints: I/O, not fitting
            run_summary.add_segment(
                summary,
                fit_seconds=time.perf_counter() - start + cache_seconds - ckpt,
                epochs=len(watch.table.rows) - rows_before,
                images=watch.throughput.images,
                train_seconds=watch.throughput.train_seconds,
                checkpoint_seconds=ckpt,
            )
        _record_fit(trainer, watch.table, summary)
        if cfg.get("test_after_fit", True):
            best = summary.best_checkpoint
            with expected_lightning_notices():
                results = trainer.test(
                    module, datamodule=datamodule, ckpt_path=best or None, weights_only=True
                )
            summary.test_acc = results[0].get("test/acc") if results else None
    finally:  # a rebuilt LR schedule; an interruption's epochs, checkpoint and val accuracies
        summary.update(watch.rebuild.findings)
        summary.update(watch.interrupt.findings)
        summary.update(run_summary.epoch_facts(watch.table.rows, summary))  # times, phases run
        summary.update(watch.drift.findings)  # what trained: weight drift per stage
    # TensorBoard HParams, with each optimizer group's effective LR
    hparams.log(trainer.loggers, cfg, summary, trainer.current_epoch, trainer.optimizers)


def _record_model(cfg: DictConfig, datamodule, module: TransferModule, summary: RunSummary) -> str:
    """Data sizes, parameter counts, precision and weights into the summary and the log;
    returns the precision the trainer will use."""
    summary.update(
        num_classes=datamodule.num_classes,
        split_sizes=datamodule.sizes(),
        preprocess=datamodule.preprocess.to_dict(),
        bad_files=getattr(datamodule, "bad_files", []),
    )
    crop, probe_start = datamodule.preprocess.crop_size, time.perf_counter()
    precision, why, probe = precision_probe.for_run(
        cfg.trainer.get("precision", "auto"),
        cfg.trainer.get("accelerator", "auto"),
        module.net,
        (datamodule.batch_size, 3, crop, crop),
        module.channels_last,
        train_all=bool(cfg.strategy.get("schedule")),  # timed in its largest phase
    )
    if probe is not None:
        probe["seconds"] = round(time.perf_counter() - probe_start, 2)  # a named one-off cost
        summary.precision_probe = probe
    trainable, total = module.plan.counts(module.net)
    # Scheduled strategies (lp_ft, gradual) train more later: each phase's count, the largest
    # as `trainable_params` (what the run actually trained).
    phases = strategies.phase_counts(module.net, module.head_names, cfg.strategy)
    summary.update(
        trainable_params_by_phase=phases,
        trainable_params=max(p["trainable"] for p in phases),
        total_params=total,
        precision=precision,
        channels_last=module.channels_last,
        weights=module.weights_origin,
    )
    log.info(
        "model %s (%s weights): %s / %s parameters trainable (%.2f%%)",
        cfg.model.name,
        module.weights_origin,
        f"{trainable:,}",
        f"{total:,}",
        100 * trainable / max(total, 1),
    )
    log.info("precision %s (%s); channels_last=%s", precision, why, module.channels_last)
    if warning := run_summary.random_backbone(cfg, trainable, total):  # e.g. lenet5 + transfer
        log.warning(warning)
        summary.warnings.append(warning)
    return precision


def _record_fit(trainer: L.Trainer, table: EpochTable, summary: RunSummary) -> None:
    """Epochs, best/final val acc (from metrics.csv's rows, all segments), checkpoints."""
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    summary.update(
        epochs=trainer.current_epoch if not trainer.fast_dev_run else 1,
        **summary_file.val_accuracies(table.rows, fallback=metrics.get("val/acc")),
        final_train_loss=metrics.get("train/loss"),
    )
    summary.update(run_summary.checkpoints(trainer))  # best.ckpt, last.ckpt (the final epoch)


def _maybe_cache_features(cfg, module, datamodule, precision: str, summary: RunSummary, stop=None):
    """Swap images for cached frozen features when that is safe (tlbench.training.feature_cache);
    returns the datamodule to train on and the features' cost, counted into the fit time;
    `stop()` between extraction batches (signals.Trap.check)."""
    limits = {s: cfg.trainer.get(f"limit_{s}_batches") for s in ("train", "val", "test")}
    use, reason = feature_cache.decide(
        cfg.strategy.get("cache_features", "auto"), module, datamodule, limits
    )
    seconds = cost = 0.0
    if use:
        # The rank's own device (DDP: each rank its GPU, and its shard, extracted inside fit)
        device = rank_device(cfg.trainer.get("accelerator", "auto"), cfg.trainer.get("devices"))
        cached, seconds, detail = feature_cache.prepare(
            module, datamodule, cfg.paths.cache_dir, precision, device, limits, stop=stop,
            test=cfg.get("test_after_fit", True), ranks=expected_ranks(cfg.trainer),
        )  # fmt: skip
        if cached is None:
            use, reason = False, detail
        else:
            datamodule = cached
            module.use_cached_features(cached.batch_size)
            # A run's cost counts computing its train/val features even on a cache hit (the time
            # measured when the cache was written): a sweep's first transfer job and the ones
            # after it then cost the same, as each would alone; made on other hardware: read time
            cost = cached.fit_seconds + (seconds if cached.elsewhere else 0.0)
            summary.update(
                feature_cache=detail,
                feature_cache_hit=cached.hit,
                feature_cache_wait_seconds=round(cached.wait_seconds, 2),  # not fit cost
                feature_extraction_seconds={
                    s: round(v, 2) for s, v in cached.extract_seconds.items()
                },
                feature_extraction_images=cached.extracted,  # here, before fit (DDP ranks: logged)
                feature_cache_made_on=cached.made_on,
            )
    log.info(reason)
    summary.update(  # feature_cache_seconds: what this run spent (loading, or computing)
        cached_features=use, cache_reason=reason, feature_cache_seconds=round(seconds, 2)
    )
    return datamodule, cost
