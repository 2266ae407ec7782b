"""`train(cfg) -> summary`: datamodule -> model -> callbacks/loggers -> trainer -> fit -> test.

This is the only module that wires data and models together (classes, preprocessing).
`main()` is the `python -m tlbench` entry point around it.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from pathlib import Path

import hydra
import lightning as L
import torch
from lightning.pytorch.callbacks import LearningRateMonitor
from omegaconf import DictConfig, OmegaConf

from tlbench import config, distributed, feature_cache, guards, hparams, resume, signals, validation
from tlbench import summary as run_summary
from tlbench.callbacks import EpochTable, ThroughputMonitor
from tlbench.device import accelerator_kind, choose_precision
from tlbench.errors import TlbenchError
from tlbench.instantiate import instantiate
from tlbench.models import build as registry
from tlbench.models.module import TransferModule

log = logging.getLogger("tlbench")


def _container(node) -> dict | None:
    return OmegaConf.to_container(node, resolve=True) if node is not None else None


def validate(cfg: DictConfig) -> None:
    """Cheap checks of the whole config before any data is read or model built."""
    validation.validate_config(cfg)  # keys, types, values, folders (tlbench/validation.py)
    registry.validate(
        cfg.model,
        image_size=cfg.data.get("image_size"),
        pretrained=bool(cfg.strategy.get("pretrained", True)) and cfg.model.get("weights") is not None,
    )


def train(cfg: DictConfig) -> dict:
    """Run one experiment; always writes `summary.json` (status ok / failed / interrupted)."""
    run_dir = Path(cfg.paths.output_dir)
    done = resume.completed(cfg, run_dir)  # skip_completed=true: nothing trained or written
    if done is not None:
        return done
    run_dir.mkdir(parents=True, exist_ok=True)
    summary = run_summary.start(cfg)
    rank_zero = distributed.is_rank_zero()  # DDP: only rank 0 writes summary.json
    if rank_zero:  # a run killed by SIGKILL shows "running", never a stale "ok"
        run_summary.write(run_dir, summary)
    try:
        with signals.Trap() as trap:  # SIGINT/SIGTERM: checkpoint + status interrupted
            _train(cfg, summary, run_dir, trap)
        summary["status"] = "ok"
    except signals.INTERRUPTS as exc:
        summary.update(
            status="interrupted",
            error=signals.describe(exc, run_dir),
            exit_code=signals.exit_code(exc),
        )
        raise
    except BaseException as exc:
        summary.update(
            status="failed",
            error=str(exc) or type(exc).__name__,
            error_type=type(exc).__name__,
            traceback=None if isinstance(exc, TlbenchError) else traceback.format_exc(),
        )
        raise
    finally:
        summary["peak_rss_mb"] = round(run_summary.peak_rss_mb(), 1)
        if torch.cuda.is_available():
            summary["cuda_max_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        distributed.finish()
        if rank_zero:
            run_summary.write(run_dir, summary)
    return summary


def build_run(cfg: DictConfig) -> tuple[L.LightningDataModule, TransferModule]:
    """Validate, then wire data and model: the datamodule takes the weights' preprocessing, the
    model takes the datamodule's classes."""
    validate(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    pretrained = bool(cfg.strategy.pretrained) and cfg.model.get("weights") is not None
    preprocess = registry.describe(cfg.model, pretrained, image_size=cfg.data.get("image_size"))
    datamodule = instantiate(cfg.data, "data", preprocess=preprocess.to_dict())
    datamodule.setup("fit")
    module = TransferModule(
        model=_container(cfg.model),
        strategy=_container(cfg.strategy),
        num_classes=datamodule.num_classes,
        class_names=list(datamodule.class_names),
        optimizer=_container(cfg.optimizer),
        scheduler=_container(cfg.get("scheduler")),
        preprocess=datamodule.preprocess.to_dict(),
        channels_last=cfg.get("channels_last", "auto"),
        load_pretrained=True,
    )
    return datamodule, module


def _train(cfg: DictConfig, summary: dict, run_dir: Path, trap=None) -> None:
    datamodule, module = build_run(cfg)
    summary.update(
        num_classes=datamodule.num_classes,
        split_sizes=datamodule.sizes(),
        preprocess=datamodule.preprocess.to_dict(),
    )
    summary["bad_files"] = getattr(datamodule, "bad_files", [])
    precision, why = choose_precision(
        cfg.trainer.get("precision", "auto"), cfg.trainer.get("accelerator", "auto")
    )
    trainable, total = module.plan.counts(module.net)
    summary.update(
        trainable_params=trainable,
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
    datamodule, cache_seconds = _maybe_cache_features(cfg, module, datamodule, precision, summary)

    throughput = ThroughputMonitor()
    table = EpochTable(run_dir / "metrics.csv")
    ckpt_path = resume.checkpoint(cfg)  # resume=<run dir>: its last.ckpt; else cfg.ckpt_path
    table.rows = resume.previous_rows(cfg, table.path, ckpt_path)  # finished epochs' rows
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
    if (
        not loggers
    ):  # Lightning refuses an LR monitor without a logger; the LRs are in metrics.csv anyway
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        "trainer",
        callbacks=[
            *callbacks,
            throughput,
            table,
            guards.NonFiniteLoss(),
            signals.InterruptCallback(trap or signals.Trap(), run_dir / "checkpoints", summary, table),
        ],
        logger=loggers or False,
        precision=precision,
    )
    for lg in trainer.loggers:
        lg.log_metrics({"params/trainable": trainable, "params/total": total}, step=0)

    if cfg.get("resume"):
        summary["resumed_from"] = ckpt_path
    distributed.prepare_children()  # DDP inside a sweep: children re-run this job only
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    # Honest cost: computing the cached features is part of fitting.
    summary["fit_seconds"] = round(time.perf_counter() - start + cache_seconds, 2)

    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    val_history = [row["val/acc"] for row in table.rows if row.get("val/acc") is not None]
    summary.update(
        epochs=trainer.current_epoch if not trainer.fast_dev_run else 1,
        best_val_acc=max(val_history) if val_history else metrics.get("val/acc"),
        final_val_acc=val_history[-1] if val_history else metrics.get("val/acc"),
        train_images_per_second=round(throughput.images_per_second, 1)
        if throughput.images_per_second
        else None,
        final_train_loss=metrics.get("train/loss"),
    )
    ckpt = trainer.checkpoint_callback
    if ckpt is not None and getattr(ckpt, "best_model_path", ""):
        summary.update(
            best_checkpoint=ckpt.best_model_path, last_checkpoint=ckpt.last_model_path or None
        )

    if cfg.get("test_after_fit", True):
        best = summary.get("best_checkpoint")
        results = trainer.test(
            module, datamodule=datamodule, ckpt_path=best or None, weights_only=True
        )
        summary["test_acc"] = results[0].get("test/acc") if results else None
    hparams.log(trainer.loggers, cfg, summary, step=trainer.global_step)  # TensorBoard HParams


def _maybe_cache_features(cfg, module, datamodule, precision: str, summary: dict):
    """Swap images for cached frozen features when that is safe (tlbench.feature_cache)."""
    use, reason = feature_cache.decide(cfg.strategy.get("cache_features", "auto"), module, datamodule)
    seconds = 0.0
    if use:
        device = torch.device("cuda" if accelerator_kind(cfg.trainer.get("accelerator", "auto")) == "cuda" else "cpu")
        cached, seconds, detail = feature_cache.prepare(module, datamodule, cfg.paths.cache_dir, precision, device)
        if cached is None:
            use, reason = False, detail
        else:
            datamodule, module.cached_features = cached, True
            summary["feature_cache"] = detail
    log.info(reason)
    summary.update(cached_features=use, cache_reason=reason, feature_cache_seconds=round(seconds, 2))
    return datamodule, seconds


def _print_summary(s: dict) -> None:
    def pct(v):
        return "n/a" if v is None else f"{100 * v:.1f}%"

    run_dir = Path(s["run_dir"])
    pngs = [n for n in ("confusion_matrix.png", "predictions.png") if (run_dir / n).is_file()]

    lines = [
        f"tlbench run {s['status']}: model={s['model']} strategy={s['strategy']} data={s['data']} seed={s['seed']}",
        f"  val acc best {pct(s['best_val_acc'])}  final {pct(s['final_val_acc'])}   test acc {pct(s['test_acc'])}",
        f"  fit {s['fit_seconds']} s over {s['epochs']} epochs, {s['train_images_per_second']} train images/s, "
        f"precision {s.get('precision')}",
        f"  trainable params {s['trainable_params']:,} / {s['total_params']:,}"
        if s.get("total_params")
        else "",
        f"  outputs: {s['run_dir']}  (summary.json, metrics.csv, checkpoints/, tensorboard/"
        f"{''.join(', ' + n for n in pngs)})",
        f"  dashboards: tensorboard --logdir {Path(s['run_dir']).parent}",
    ]
    print("\n".join(line for line in lines if line), flush=True)


def _hydra_mode_is_multirun() -> bool:
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:
        return False


def run_from_hydra(cfg: DictConfig) -> dict | None:
    """What one Hydra job does. A failed job is recorded, reported and -- in a sweep -- not fatal."""
    try:
        s = train(cfg)
    except signals.INTERRUPTS as exc:  # a sweep stops too: the exit code says why
        print(f"\ntlbench: {signals.describe(exc, cfg.paths.output_dir)}\n", file=sys.stderr, flush=True)
        raise SystemExit(signals.exit_code(exc)) from None
    except TlbenchError as exc:
        print(f"\nError: {exc}\n", file=sys.stderr, flush=True)
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        if _hydra_mode_is_multirun():
            return None
        raise SystemExit(2) from None
    except Exception as exc:
        print(
            f"\nError: {type(exc).__name__}: {exc}\n(the traceback is in {cfg.paths.output_dir}/summary.json; "
            f"set HYDRA_FULL_ERROR=1 to see it here)\n",
            file=sys.stderr,
            flush=True,
        )
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        if _hydra_mode_is_multirun():
            return None
        raise SystemExit(1) from None
    if s.get("skipped"):
        print(f"tlbench: skipped {s['run_dir']} (already completed: skip_completed=true)", flush=True)
    elif distributed.is_rank_zero():
        _print_summary(s)
    return s


def main() -> None:
    config.register()
    if not config.CONF_DIR.is_dir():
        sys.exit(
            f"tlbench: its configs are missing at {config.CONF_DIR}. Install tlbench editable from its "
            "repository (`make install`, i.e. `pip install -e .`), which keeps conf/ beside the package."
        )
    try:  # before Hydra writes anything: resume=, composition errors, completed run dirs
        argv = resume.rewrite_argv(sys.argv[1:])
        jobs = validation.job_overrides(argv)
        if os.environ.get("HYDRA_FULL_ERROR") != "1" and not resume.is_ddp_child():
            validation.preflight(argv, jobs)
        resume.check_targets(argv, jobs)
    except TlbenchError as exc:
        print(f"\nError: {exc}\n", file=sys.stderr, flush=True)
        sys.exit(2)
    sys.argv = [sys.argv[0], *argv]
    hydra.main(version_base="1.3", config_path=str(config.CONF_DIR), config_name="train")(
        run_from_hydra
    )()


if __name__ == "__main__":
    main()
