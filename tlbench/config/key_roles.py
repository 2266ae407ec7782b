"""What each config key means, declared once: for the report (identity, setting, replicate or
neutral), for resume (whether a resumed run may change it) and for TensorBoard's HParams (its
column). The report, resume and HParams code read ROLES through the functions below;
tests/config/test_key_roles.py fails when a composed config holds a key not declared here.
Neutral = where or how a run is logged, resumed or displayed, or only how fast it goes. Keys that
look harmless but change the result are settings: the checkpoint callback (the test runs on the
best checkpoint), `trainer.limit_*_batches`, precision, channels_last, the accelerator.
"""

from __future__ import annotations

from dataclasses import dataclass

IDENTITY = "identity"  # defines the arm compared: data, model, strategy, label budget
SETTING = "setting"  # a choice the report selects among on validation (lr, epochs, ...)
REPLICATE = "replicate"  # runs differing only here are seeds of one configuration
NEUTRAL = "neutral"  # where or how a run runs, never what it computes


@dataclass(frozen=True)
class Role:
    report: str
    resumable: bool = False  # a resumed run may change it (runtime.launch)
    column: str | None = None  # its HParams column when swept (else the key itself)
    summary: str | None = None  # the summary.json field the report groups on
    subtree: bool = False  # the role covers every key below it too


def _each(report: str, keys: str, **kw) -> dict[str, Role]:
    return {k: Role(report, **kw) for k in keys.split()}


ROLES: dict[str, Role] = {
    # -- the arm --------------------------------------------------------------------------------
    "data.name": Role(IDENTITY, summary="data"),
    "model.name": Role(IDENTITY, summary="model"),
    "strategy.name": Role(IDENTITY, summary="strategy"),
    "data.samples_per_class": Role(IDENTITY, column="label_budget", summary="samples_per_class"),
    "data.train_fraction": Role(IDENTITY, column="label_budget", summary="train_fraction"),
    "model.weights": Role(IDENTITY, column="weights"),
    **_each(IDENTITY, "data model strategy experiment data._target_ data.classes"),
    **_each(IDENTITY, "data.superclasses data.root data.train_dir data.val_dir data.test_dir"),
    **_each(IDENTITY, "data.val_fraction data.test_fraction model.source model.small_input"),
    # -- settings (selected among on validation) ------------------------------------------------
    "data.image_size": Role(SETTING, column="image_size", summary="image_size"),
    "data.batch_size": Role(SETTING, column="batch_size", summary="batch_size"),
    "optimizer.lr": Role(SETTING, column="lr", summary="lr"),
    "trainer.max_epochs": Role(SETTING, resumable=True, column="max_epochs", summary="max_epochs"),
    "trainer.precision": Role(SETTING, column="precision"),
    "data.augment": Role(SETTING, column="augment"),
    **_each(SETTING, "callbacks trainer channels_last compile matmul_precision cudnn_benchmark"),
    **_each(SETTING, "data.on_bad_file data.verify data.check_md5 trainer.strategy"),
    **_each(SETTING, "trainer.deterministic trainer.fast_dev_run trainer.num_sanity_val_steps"),
    **_each(SETTING, "trainer.limit_train_batches trainer.limit_val_batches"),
    **_each(SETTING, "trainer.limit_test_batches trainer._target_ trainer.default_root_dir"),
    **_each(SETTING, "optimizer scheduler strategy.l2sp strategy.lr_mult", subtree=True),
    **_each(SETTING, "callbacks.model_checkpoint callbacks.early_stopping", subtree=True),
    **_each(SETTING, "strategy.pretrained strategy.trainable strategy.train_bn strategy.bn_mode"),
    **_each(SETTING, "strategy.head_lr_mult strategy.backbone_lr_mult strategy.last_n_stages"),
    **_each(SETTING, "strategy.layer_decay strategy.schedule strategy.cache_features"),
    **_each(SETTING, "strategy.warmup_epochs"),
    # The accelerator is part of the result (fit time), yet a resumed run may move to another.
    **_each(SETTING, "trainer.accelerator trainer.devices trainer.num_nodes", resumable=True),
    # -- replicates -----------------------------------------------------------------------------
    **_each(REPLICATE, "seed data.subset_seed data.split_seed"),
    # -- neutral: where and how it runs ---------------------------------------------------------
    **_each(NEUTRAL, "resume skip_completed overwrite", resumable=True),  # steer resuming
    **_each(NEUTRAL, "ckpt_path data.download"),
    **_each(NEUTRAL, "test_after_fit data.num_workers trainer.log_every_n_steps", resumable=True),
    **_each(NEUTRAL, "data.persistent_workers data.pin_memory", resumable=True),  # speed only
    **_each(NEUTRAL, "trainer.enable_progress_bar trainer.enable_model_summary", resumable=True),
    **_each(NEUTRAL, "trainer.enable_checkpointing"),
    **_each(NEUTRAL, "logger paths callbacks.images", resumable=True, subtree=True),
    **_each(NEUTRAL, "hydra callbacks.learning_rates callbacks.last_checkpoint", subtree=True),
}


def role(key: str) -> Role | None:
    """The declared role of a config or override key (`+`/`~` and `hydra/x` spellings allowed);
    None for a key nobody declared (a preset's own helper key, a user's `+key=`)."""
    parts = key.lstrip("+~").replace("/", ".").split(".")
    for i in range(len(parts), 0, -1):
        found = ROLES.get(".".join(parts[:i]))
        if found is not None and (i == len(parts) or found.subtree):
            return found
    return None


def _report(key: str) -> str | None:
    found = role(key)
    return found.report if found else None


def is_neutral(key: str) -> bool:
    return _report(key) == NEUTRAL


def is_replicate(key: str) -> bool:
    return _report(key) == REPLICATE


def is_resumable(key: str) -> bool:
    found = role(key)
    return bool(found and found.resumable)


def column(key: str) -> str:
    """The HParams column a swept key fills: its declared column, else the key itself."""
    found = role(key)
    return found.column if found and found.column else key


def summary_fields(report: str) -> dict[str, str]:
    """{summary.json field: config key} of the keys with this role that the summary records."""
    return {r.summary: k for k, r in ROLES.items() if r.report == report and r.summary}
