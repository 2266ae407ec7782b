"""What a job's command-line overrides say about its experiment: the one list of overrides that
do NOT change what a run measures, and the replicate keys (seeds).

Used by the comparison report (neutral overrides never split a configuration; replicates are
averaged over) and by TensorBoard (run names and the HParams columns show only what differs).
Pure string handling: no Hydra, no torch, so `python -m tlbench.report` stays quick.

A key is *neutral* when it changes where or how a run is logged, resumed or displayed, or only
how fast it goes -- never what is trained or measured. Keys that look harmless but do change the
result are deliberately NOT here: `callbacks.model_checkpoint` (the test runs on the best
checkpoint), `callbacks.early_stopping`, `trainer.limit_*_batches`, `trainer.precision`,
`channels_last` (numerics), `trainer.accelerator`/`devices` (the fit time is part of the result).
"""

from __future__ import annotations

from pathlib import Path

MULTIRUN_YAML = "multirun.yaml"  # Hydra's record of a sweep, written in the sweep dir first

# Replicates: runs that differ only in these are seeds of one configuration.
REPLICATE_KEYS = ("seed", "data.subset_seed", "data.split_seed")

NEUTRAL_KEYS = (
    "resume",  # continue a killed run in place
    "skip_completed",  # skip finished jobs of a re-launched sweep
    "overwrite",  # allow writing into a used run dir
    "ckpt_path",  # resume from a checkpoint
    "logger",  # tensorboard | none
    "test_after_fit",  # whether the test runs after training; training is the same
    "data.num_workers",  # speed only
    "data.download",  # where the files come from
    "trainer.log_every_n_steps",
)
NEUTRAL_PREFIXES = (
    "hydra.",  # run/sweep dirs, launchers, job logging
    "hydra/",
    "paths.",  # output, data and cache folders
    "logger.",
    "trainer.enable_",  # progress bar, model summary, checkpointing flag
    "callbacks.images",  # TensorBoard images and PNGs
    "callbacks.learning_rates",  # lr/<group> scalars
    "callbacks.last_checkpoint",  # last.ckpt for resume=
)


def parse(text: str) -> tuple[str, str]:
    """'+data.samples_per_class=5' -> ('data.samples_per_class', '5'); '~foo' -> ('foo', '~')."""
    text = str(text)
    key, sep, value = text.partition("=")
    if key.startswith("~"):
        return key.lstrip("~"), "~" + value
    return key.lstrip("+"), value if sep else ""


def is_neutral(key: str) -> bool:
    return key in NEUTRAL_KEYS or key.startswith(NEUTRAL_PREFIXES)


def is_replicate(key: str) -> bool:
    return key in REPLICATE_KEYS


def experiment_overrides(overrides) -> dict[str, str]:
    """key -> value of the overrides that change the experiment (seeds included), in order."""
    parsed = (parse(o) for o in overrides)
    return {k: v for k, v in parsed if not is_neutral(k)}


def run_name(overrides, limit: int = 150) -> str:
    """A folder-safe run name from what changes the experiment: 'strategy=finetune,seed=1'.

    '' when nothing does (a plain `python -m tlbench`). Slashes (`model=timm/resnet18`, paths)
    become '_' so the name stays one folder; very long names are cut and marked with '~'.
    """
    name = ",".join(f"{k}={v}" for k, v in experiment_overrides(overrides).items())
    name = name.replace("/", "_").replace("\\", "_").replace(" ", "")
    return name if len(name) <= limit else name[: limit - 1] + "~"


def swept_keys(run_dir, overrides) -> list[str]:
    """The override keys a sweep varies (seeds included, neutral keys not), in sweep order, from
    the sweep dir's multirun.yaml (its command-line sweeps and `hydra.sweeper.params`); for a
    run outside a sweep, the keys of its own overrides that change the experiment."""
    path = Path(str(run_dir)).parent / MULTIRUN_YAML
    if not path.is_file():
        return list(experiment_overrides(overrides))
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    try:
        sweep = OmegaConf.load(path)
        raw = [str(o) for o in OmegaConf.select(sweep, "hydra.overrides.task", default=[]) or []]
        params = OmegaConf.select(sweep, "hydra.sweeper.params", default=None) or {}
        raw += [f"{k}={v}" for k, v in params.items()]
        parsed = OverridesParser.create().parse_overrides(raw)
    except Exception:  # a sweep record we cannot read must not cost the run its logger
        return list(experiment_overrides(overrides))
    keys: list[str] = []
    for o in parsed:
        key = o.key_or_group
        if o.is_sweep_override() and not is_neutral(key) and key not in keys:
            keys.append(key)
    return keys


def tensorboard_version(run_dir) -> str:
    """The `${tlbench_run_name:<run dir>}` resolver (conf/logger/tensorboard.yaml's `version`).

    A job of a sweep (its parent holds the sweep's multirun.yaml) logs into
    `<job>/tensorboard/<the values of the swept keys>`, so `tensorboard --logdir <sweep dir>`
    lists `3/tensorboard/strategy=finetune,optimizer.lr=0.001,seed=1` instead of `3/tensorboard`.
    A resumed sweep job keeps its dir, hence its name. A single run keeps `<run>/tensorboard/`.
    """
    if not (Path(str(run_dir)).parent / MULTIRUN_YAML).is_file():
        return ""
    from tlbench.config import runtime

    own = runtime.task_overrides()
    values = experiment_overrides(own)
    swept = [k for k in swept_keys(run_dir, own) if k in values]
    return run_name([f"{k}={values[k]}" for k in swept] if swept else own)


def budget_label(samples_per_class, train_fraction) -> str:
    """How a label budget is named everywhere it is shown (report tables, TensorBoard hparams):
    '10/class', '25 % of train' or 'all'."""

    def number(v) -> float | None:
        try:
            return None if v is None or v == "" else float(v)
        except (TypeError, ValueError):
            return None

    spc, tf = number(samples_per_class), number(train_fraction)
    if spc is not None:
        return f"{spc:g}/class"
    if tf is not None:
        return f"{100 * tf:g} % of train"
    return "all"
