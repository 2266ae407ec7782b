"""What a job's command-line overrides say about its experiment (which keys are neutral or
replicates: tlbench.config.key_roles): run names, the swept keys, the label budget's label.
Pure string handling: no Hydra, no torch, so `python -m tlbench.report` stays quick.
"""

from __future__ import annotations

from pathlib import Path

from tlbench.config.key_roles import is_neutral

MULTIRUN_YAML = "multirun.yaml"  # Hydra's record of a sweep, written in the sweep dir first
# Hydra's command-line flags (hydra/_internal/utils.py, get_args_parser): those that take the next
# argument as their value, and those that print something and exit without running a job.
VALUE_FLAGS = frozenset(
    ["-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir", "-c", "--cfg",
     "-p", "--package", "-sc", "--shell-completion", "--experimental-rerun"]
)  # fmt: skip
INFO_FLAGS = frozenset(
    ["-h", "--help", "--hydra-help", "--version", "-c", "--cfg", "--resolve", "-p", "--package",
     "-i", "--info", "-sc", "--shell-completion"]
)  # fmt: skip
MODE_FLAGS = frozenset(("-m", "--multirun", "-r", "--run"))  # run or sweep: tlbench checks both


def split_argv(argv) -> tuple[set[str], list[str]]:
    """(the names of Hydra's flags, the overrides) of a command line; a flag's value is neither.
    tlbench checks a command line before Hydra only when its flags are MODE_FLAGS: one that
    names another config (`--config-dir x`) or prints and exits is Hydra's alone."""
    flags: set[str] = set()
    overrides: list[str] = []
    takes_value = False
    for arg in map(str, argv):
        if takes_value:
            takes_value = False
        elif arg.startswith("-"):
            name, sep, _ = arg.partition("=")
            flags.add(name)
            takes_value = name in VALUE_FLAGS and not sep
        else:
            overrides.append(arg)
    return flags, overrides


def parse(text: str) -> tuple[str, str]:
    """'+data.samples_per_class=5' -> ('data.samples_per_class', '5'); '~foo' -> ('foo', '~')."""
    text = str(text)
    key, sep, value = text.partition("=")
    if key.startswith("~"):
        return key.lstrip("~"), "~" + value
    return key.lstrip("+"), value if sep else ""


def experiment_overrides(overrides) -> dict[str, str]:
    """key -> value of the overrides that change the experiment (seeds included), in order."""
    parsed = (parse(o) for o in overrides)
    return {k: v for k, v in parsed if not is_neutral(k)}


def _short(key: str, value: str) -> str:
    """'strategy', 'finetune' -> 'finetune' (a config group's choice speaks for itself);
    'optimizer.lr', '0.001' -> 'lr=1e-3'; 'seed', '0' -> 's0'."""
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is not None and not value.lstrip("+-").isdigit() and 0 < abs(number) < 0.01:
        mantissa, exp = f"{number:e}".split("e")
        value = f"{mantissa.rstrip('0').rstrip('.')}e{int(exp)}"
    if key == "seed":
        return f"s{value}"
    if "." not in key and number is None and value not in ("true", "false", "null"):
        return value
    return f"{key.rsplit('.', 1)[-1]}={value}"


def run_name(overrides, limit: int = 60) -> str:
    """A short folder-safe run name from what changes the experiment: 'finetune lr=1e-3 s0', so
    TensorBoard's run list (~38 characters wide) shows it whole.

    '' when nothing does (a plain `python -m tlbench`). Slashes (`model=timm/resnet18`, paths)
    become '_' so the name stays one folder; very long names are cut and marked with '~'.
    """
    name = " ".join(
        _short(k, v.replace(" ", "")) for k, v in experiment_overrides(overrides).items()
    )
    name = name.replace("/", "_").replace("\\", "_")
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


def sweep_of(run_dir) -> Path | None:
    """The sweep dir that a run dir is a job of (it holds the sweep's multirun.yaml), else None."""
    parent = Path(str(run_dir)).parent
    return parent if (parent / MULTIRUN_YAML).is_file() else None


def tensorboard_version(run_dir) -> str:
    """The `${tlbench_run_name:<run dir>}` resolver (conf/logger/tensorboard.yaml's `version`).

    A job of a sweep (its parent holds the sweep's multirun.yaml) logs into
    `<job>/tensorboard/<the values of the swept keys>`, so `tensorboard --logdir <sweep dir>`
    lists `3/tensorboard/finetune lr=1e-3 s1` (run_name) instead of `3/tensorboard`.
    A resumed sweep job keeps its dir, hence its name. A single run keeps `<run>/tensorboard/`.
    """
    if sweep_of(run_dir) is None:
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
