"""TensorBoard's HParams view, written so that a sweep opens on what it compares.

Logged once, at the end of a run: the swept keys, `strategy` and each optimizer group's effective
LR (`lr/<group>`) are marked `differs`, so TensorBoard lists and ticks them first; the metric
columns are summary.json's values. The protos are written by hand.
Why: docs/architecture.md, "TensorBoard HParams".
"""

from __future__ import annotations

import time
from pathlib import Path

from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig

from tlbench.config import runtime as hydra_runtime
from tlbench.config.key_roles import column
from tlbench.config.overrides import budget_label, experiment_overrides, swept_keys
from tlbench.summary_file import RunSummary

# summary.json field -> hparams metric tag
METRICS = {
    "best_val_acc": "summary/best_val_acc",
    "final_val_acc": "summary/final_val_acc",
    "test_acc": "summary/test_acc",
    "fit_seconds": "summary/fit_seconds",
    "train_images_per_second": "summary/train_images_per_sec",
}
# Groups every run reports (0 when nothing trains there), so all runs of a sweep share columns:
# TensorBoard takes the column list from one run's experiment summary.
LR_GROUPS = ("head", "backbone")


def _scalar(value):
    """TensorBoard's hparams take bool / int / float / str only."""
    if value is None:
        return "none"
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _number_or_text(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def params(cfg: DictConfig, summary: RunSummary) -> dict:
    """Flat hyper-parameters of a run: what a sweep varies and what explains its results."""
    optimizer = str((cfg.get("optimizer") or {}).get("_target_", "none")).rsplit(".", 1)[-1]
    scheduler = cfg.get("scheduler") or {}
    out = {
        "data": summary.data,
        "model": summary.model,
        "strategy": summary.strategy,
        "weights": summary.weights,
        "lr": summary.lr,
        "batch_size": summary.batch_size,
        "image_size": summary.image_size,
        "label_budget": budget_label(summary.samples_per_class, summary.train_fraction),
        "seed": summary.seed,
        "precision": summary.precision,
        "optimizer": optimizer,
        "scheduler": str(scheduler.get("_target_", "none")).rsplit(".", 1)[-1],
        "max_epochs": summary.max_epochs,
        "augment": (cfg.get("data") or {}).get("augment"),
        "trainable_params": summary.trainable_params,
    }
    # Numeric budgets too, so the parallel-coordinates view can order them (only when set).
    for key in ("samples_per_class", "train_fraction"):
        if summary.value(key) is not None:
            out[key] = summary.value(key)
    return {k: _scalar(v) for k, v in out.items()}


def group_lrs(optimizers) -> dict[str, float]:
    """`lr/<group>` -> the LR the group trained at: its `initial_lr` (what an LR scheduler
    starts from: base lr x multiplier) or, without a scheduler, its `lr`."""
    lrs = {f"lr/{g}": 0.0 for g in LR_GROUPS}
    for opt in optimizers or ():
        for i, group in enumerate(opt.param_groups):
            lrs[f"lr/{group.get('name', i)}"] = float(group.get("initial_lr", group["lr"]))
    return lrs


def columns(cfg, summary: RunSummary, overrides: list[str], swept, lrs) -> tuple[dict, set[str]]:
    """(hparams, names marked `differs`): every column, and the ones the comparison is about."""
    hp = {**params(cfg, summary), **lrs}
    own = experiment_overrides(overrides)
    differs = {"strategy", *lrs}
    for key in swept:
        name = column(key)  # its own column (lr, label_budget, ...) or the key itself
        if name not in hp:
            hp[name] = _scalar(_number_or_text(own.get(key, "none")))
        differs.add(name)
    return hp, differs


def experiment_pb(hp: dict, differs: set[str], metric_tags):
    """The experiment summary (column list) with `differs` set on the compared columns."""
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    kinds = {bool: "DATA_TYPE_BOOL", str: "DATA_TYPE_STRING"}
    infos = [
        api_pb2.HParamInfo(
            name=name,
            type=api_pb2.DataType.Value(kinds.get(type(value), "DATA_TYPE_FLOAT64")),
            differs=name in differs,
            description="compared in this sweep" if name in differs else "",
        )
        for name, value in hp.items()
    ]
    metric_infos = [api_pb2.MetricInfo(name=api_pb2.MetricName(tag=t)) for t in metric_tags]
    experiment = api_pb2.Experiment(
        hparam_infos=infos, metric_infos=metric_infos, time_created_secs=time.time()
    )
    return _summary(
        metadata.EXPERIMENT_TAG, plugin_data_pb2.HParamsPluginData(experiment=experiment)
    )


def _summary(tag: str, plugin_data):
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import metadata

    pb = summary_pb2.Summary()
    pb.value.add(
        tag=tag, metadata=metadata.create_summary_metadata(plugin_data), tensor=metadata.NULL_TENSOR
    )
    return pb


def session_pbs(hp: dict, trial_id: str | None = None) -> list:
    """Session start (this run's values) and end (success) summaries. `trial_id` is the
    Trial ID column (default: a hash of the values)."""
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2, summary_v2

    end = plugin_data_pb2.SessionEndInfo(status=api_pb2.STATUS_SUCCESS, end_time_secs=time.time())
    return [
        summary_v2.hparams_pb(hp, trial_id=trial_id),
        _summary(
            metadata.SESSION_END_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_end_info=end)
        ),
    ]


def metrics(summary: RunSummary) -> dict[str, float]:
    return {
        tag: float(summary.value(key))
        for key, tag in METRICS.items()
        if summary.value(key) is not None
    }


def _write(log_dir: str, pbs: list, step: int) -> None:
    from tensorboard.compat.proto import event_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(log_dir, filename_suffix=".hparams")
    for pb in pbs:
        writer.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=pb))
    writer.close()


def log(
    loggers, cfg: DictConfig, summary: RunSummary, step: int | None = None, optimizers=()
) -> None:
    """Write the hparams session into every TensorBoard logger (others are left alone). Lightning
    has finalized the loggers after fit/test; finalize again to flush and close the new file."""
    tb = [lg for lg in loggers if isinstance(lg, TensorBoardLogger)]
    if not tb:
        return
    overrides = hydra_runtime.task_overrides()
    swept = swept_keys(Path(cfg.paths.output_dir), overrides)
    hp, differs = columns(cfg, summary, overrides, swept, group_lrs(optimizers))
    scores = metrics(summary)
    for lg in tb:
        lg.log_metrics(scores, step=step)
        lg.finalize("success")
        # Trial ID: the job and its run name ("3/strategy=finetune,seed=1"), not a hash
        trial = "/".join(p for p in (Path(cfg.paths.output_dir).name, str(lg.version)) if p)
        pbs = [experiment_pb(hp, differs, scores), *session_pbs(hp, trial)]
        _write(lg.log_dir, pbs, step or 0)
