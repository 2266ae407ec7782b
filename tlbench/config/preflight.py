"""Checks of a whole `python -m tlbench` command line before Hydra starts (and so before it creates
any run dir): every job of a sweep is composed as Hydra will compose it (a single run is also
validated: tlbench.config.validation), and Hydra's own composition errors become the same
one-paragraph TlbenchErrors. A sweep's jobs are those Hydra's sweeper will launch (its own
`split_arguments`); a sweeper without one is left to Hydra. Why: docs/architecture.md,
"Configuration".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import is_dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException, ValidationError

from tlbench.config import schema
from tlbench.config.keys import describe, unknown_key
from tlbench.config.overrides import MODE_FLAGS, split_argv
from tlbench.config.resolution import check_resolves, omegaconf_error
from tlbench.errors import TlbenchError, one_of

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"  # hydra/sweeper=basic
# A key of a dict value: after `{` or `,`, up to the `:`. Hydra's grammar takes glob characters
# there (`*`, `?`, `-`, `.`) but not brackets, which must be escaped: `features.conv\[1-6\]*`.
DICT_KEY = re.compile(r"([{,]\s*)([^'\"\s{},:][^{},:]*?)(\s*:)")
MERGING = re.compile(r"Error merging override \+*([^=\s]+)=")  # Hydra's ConfigCompositionException
QUOTING_HINT = (
    "a dict key holding brackets must escape them for Hydra, e.g. "
    "strategy.lr_mult='{features.conv\\[1-6\\]*: 0}' (single quotes for the shell)"
)


def compose_error(
    exc: BaseException,
    overrides: list[str],
    command: str = "tlbench",
    check: Callable[[DictConfig], object] | None = None,
) -> TlbenchError:
    """Hydra's composition errors as one paragraph naming the override and the allowed values;
    OmegaConf's errors through omegaconf_error. The one place both are translated. `check`: the
    entry point's validation, which words a value that a typed schema refused (typed_error)."""
    from hydra.errors import MissingConfigException

    if isinstance(exc, TlbenchError):
        return exc
    if isinstance(exc.__cause__, ValidationError) or isinstance(exc, ValidationError):
        return typed_error(exc, overrides, command, check)
    if isinstance(exc, OmegaConfBaseException):
        return omegaconf_error(exc, overrides)
    text = str(exc)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    if isinstance(exc, MissingConfigException) and exc.options:
        group = None
        if exc.missing_cfg_file:
            group = str(exc.missing_cfg_file).rsplit("/", 1)[0]
        value = None
        for o in overrides:
            k, _, v = o.lstrip("+~").partition("=")
            if k == group or (group and k.endswith(f"/{group}")):
                value = v
        if group:
            return one_of(
                group, value or str(exc.missing_cfg_file), exc.options, what=f"{group} config"
            )
    key = text.split("'")[1] if "'" in text else None
    value = _value(key, overrides)
    if "An item is already at" in text:  # `+seed=1`: was refused as an unknown key 'seed'
        return TlbenchError(
            "this key is in the config already, and + adds only a key that is not",
            key=f"+{key}",
            value=value,
            fix=f"set it without the +: {key}={value}",
        )
    if "Could not override" in text or "Could not append" in text or "Key '" in text:
        rest = _composed_without(key, overrides, command) if key else None
        top = key.partition(".")[0] if key and "." in key else None
        if rest is not None and top and rest.get(top) is None:  # evaluate's data: null
            return TlbenchError(
                f"no {top} config is chosen, so there is no {key} to set",
                key=key,
                value=value,
                fix=f"choose one first: {top}=<name> {key}={value} (`python -m {command} "
                f"--help` lists the {top} configs)",
            )
        node, parent = rest, (key or "").rpartition(".")[0]
        while rest is not None and parent:  # the deepest node that exists: its keys are listed
            node = OmegaConf.select(rest, parent)
            if node is not None:
                break
            parent = parent.rpartition(".")[0]
        else:
            node = rest
        if isinstance(node, DictConfig):  # as for a key added with +: Allowed, close matches
            siblings = {str(k) for k in node if not str(k).startswith("_")}  # not _target_
            return unknown_key(key, siblings, value, command)
        return TlbenchError(
            f"this key does not exist in the config ({first})",
            key=key,
            value=value,
            fix=f"check the spelling against `python -m {command} --cfg job`; + adds a key only "
            "where the component accepts it",
        )
    dict_key = any("={" in o and any(c in o for c in "[]") for o in overrides)
    return TlbenchError(
        f"the command line cannot be turned into a config: {' '.join(text.split())}",
        key="overrides",
        value=" ".join(overrides),
        fix=(QUOTING_HINT + "; " if dict_key else "")
        + "check the override syntax (key=value, group=option, +new_key=value); "
        f"see `python -m {command} --help`",
    )


def typed_error(exc: Exception, overrides: list[str], command: str, check) -> TlbenchError:
    """A value of the wrong type, refused by a typed schema while Hydra composed
    (`strategy.trainable=head`): `check` on the config with that value in an untyped copy words
    it as tlbench words that value anywhere (`takes a list, even of one item`); else Hydra's
    reason, with the key's full name."""
    cause = exc.__cause__ if isinstance(exc.__cause__, ValidationError) else exc
    key = str(cause.full_key)
    named = MERGING.match(str(exc))  # Hydra names the override it was merging
    if named and not key.startswith(named[1]):  # an item of it: `strategy.schedule=[abc]` -> '0'
        key = named[1]
    text, value = _parsed(key, overrides)
    rest = _composed_without(key, overrides, command) if check and text is not None else None
    if rest is not None:
        plain = OmegaConf.create(OmegaConf.to_container(rest, resolve=False))
        OmegaConf.update(plain, key, value, force_add=True)
        if "paths" in plain:  # ${hydra:runtime.output_dir} resolves only in a job: any dir words it
            plain.paths.output_dir = str(Path.cwd())
        try:
            check(plain)
        except TlbenchError as err:  # its words for this value, not another problem of the copy
            if err.key is not None and re.match(rf"{re.escape(key)}($|[.\[])", err.key):
                return err
        except Exception:  # the copy trips over something else: Hydra's reason below
            pass
    declared = schema.types(cause.object_type) if is_dataclass(cause.object_type) else {}
    return TlbenchError(
        f"wrong type ({str(cause).splitlines()[0]})",
        key=key,
        value=value,
        allowed=describe(declared[cause.key]) if cause.key in declared else None,
        fix=f"give {key} a value of that type (see `python -m {command} --cfg job`)",
    )


def _parsed(key: str | None, overrides: list[str]) -> tuple[str | None, object]:
    """(the text the command line gives `key`, or None; the value Hydra parses from it)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    typed = [o for o in overrides if o.lstrip("+~").startswith(f"{key}=")]
    if not typed:
        return None, None
    text = typed[-1].partition("=")[2]
    try:
        return text, OverridesParser.create().parse_overrides(typed[-1:])[0].value()
    except Exception:
        return text, text


def _value(key: str | None, overrides: list[str]):
    """The value for a message: as Hydra parses it (`qqq=1` -> 1), a list or dict as typed."""
    text, value = _parsed(key, overrides)
    return value if isinstance(value, (str, int, float, bool)) else text


def _composed_without(key: str, overrides: list[str], command: str) -> DictConfig | None:
    """The config the other overrides compose (None when they do not)."""
    from tlbench.config import compose

    rest = [o for o in overrides if o.lstrip("+~").partition("=")[0] != key]
    try:
        return compose(rest, config_name=command.partition(".")[2] or "train")
    except Exception:
        return None


def quote_dict_keys(argv: list[str]) -> list[str]:
    """`key={glob[1-6]*: 0}` as `key={glob\\[1-6\\]*: 0}`: an override Hydra cannot parse only
    because a dict key holds brackets is rewritten with them escaped (and left alone when that
    does not make it parse), so `strategy.lr_mult='{features.conv[1-6]*: 0}'` works as the
    README writes it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()

    def parses(arg: str) -> bool:
        try:
            parser.parse_overrides([arg])
            return True
        except Exception:
            return False

    out = []
    for arg in argv:
        if not arg.startswith("-") and "={" in arg and not parses(arg):
            key, _, value = arg.partition("=")
            quoted = f"{key}={DICT_KEY.sub(_escape_key, value)}"
            arg = quoted if parses(quoted) else arg
        out.append(arg)
    return out


def _escape_key(m: re.Match) -> str:
    key = re.sub(r"(?<!\\)([\[\]])", r"\\\1", m[2])
    return f"{m[1]}{key}{m[3]}"


def sweep_jobs(args: list[str]) -> list[list[str]] | None:
    """The override list of every job of a multirun, as Hydra's configured sweeper will launch
    them: its `split_arguments` over the primary config's `hydra.sweeper.params` (an experiment's
    grid) and then the command line, which is what the basic sweeper does. None for a sweeper
    without it (Optuna, Ax, ...) or a sweep it refuses (a range over floats): Hydra's business."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.utils import get_class

    from tlbench.config import compose

    parser = OverridesParser.create()
    parsed = parser.parse_overrides(args)
    if any(o.key_or_group.startswith("hydra/sweeper") for o in parsed):
        return None
    # Hydra composes the sweeper's own config without the swept overrides: so does this.
    fixed = [a for a, o in zip(args, parsed, strict=True) if not o.is_sweep_override()]
    try:
        sweeper = compose(fixed, return_hydra_config=True).hydra.sweeper
    except Exception:  # the command line does not compose: preflight says why for each job
        sweeper = OmegaConf.create({"_target_": BASIC_SWEEPER, "params": None})
    split = getattr(get_class(sweeper._target_), "split_arguments", None)
    if split is None:
        return None
    params = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
    return [job for batch in split(parser.parse_overrides([*params, *args]), None) for job in batch]


def job_overrides(argv: list[str]) -> list[list[str]] | None:
    """The override list of every job the command line asks for, or None when it cannot be
    worked out here (custom sweepers, --help, ...)."""
    flags, args = split_argv(argv)
    if flags - MODE_FLAGS:
        return None
    if not flags & {"-m", "--multirun"}:
        return [args]
    try:
        return sweep_jobs(args)
    except Exception:
        return None  # Hydra will report it itself


def run_dir(cfg: DictConfig) -> Path | None:
    """Where Hydra will put a single run's outputs (`paths.output_dir` when it is set outright)."""
    for key in ("paths.output_dir", "hydra.run.dir"):
        try:  # ${hydra:runtime.output_dir} is known only once Hydra runs the job
            return Path(OmegaConf.select(cfg, key, throw_on_resolution_failure=True))
        except Exception:
            continue
    return None


def compose_command(
    argv: list[str], config_name: str, check: Callable[[DictConfig], object] | None = None
) -> DictConfig | None:
    """`python -m tlbench.<rank|evaluate|predict|export>`: the command line must compose (the first
    job of a sweep stands for all), else Hydra's error as one paragraph -- `tlbench.rank
    model=lenet5` printed Hydra's raw "Could not override 'model'". Returns that job's config
    without its `hydra` node (None when the command line is Hydra's alone: `--help`, ...)."""
    from tlbench.config import compose

    jobs = job_overrides(argv)
    for overrides in (jobs or [])[:1]:
        try:
            cfg = compose(overrides, config_name=config_name, return_hydra_config=True)
            check_resolves(cfg)
        except Exception as exc:
            raise compose_error(exc, overrides, f"tlbench.{config_name}", check) from None
        with open_dict(cfg):
            cfg.pop("hydra")
        return cfg
    return None


def preflight(
    argv: list[str],
    jobs: list[list[str]] | None,
    limit: int = 64,
    then: Callable[[DictConfig], object] | None = None,
) -> None:
    """Compose every job's config as Hydra will (the first `limit` of a sweep; what one costs:
    BENCHMARKS.md, "Small measurements"), resolve its interpolations, and raise Hydra's and
    OmegaConf's errors as TlbenchErrors;
    validate a single run's config too, then `then(cfg)`: the checks that need the layers above
    config (the model registry, the strategy's patterns on the network), passed in by the entry
    point. So every check that does not need the data runs before Hydra creates the run dir. In a
    multirun a job whose values are bad is left to fail on its own (its summary.json says why)
    while the sweep goes on, as the README's Sweeps section promises."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from tlbench.config import compose
    from tlbench.config.validation import validate_config

    if jobs is None:
        return
    try:
        OverridesParser.create().parse_overrides(split_argv(argv)[1])
    except Exception as exc:
        raise compose_error(exc, argv) from None
    multirun = any(a in ("-m", "--multirun") for a in argv)
    for overrides in jobs[:limit]:
        try:
            cfg = compose(overrides, return_hydra_config=True)
            check_resolves(cfg)
        except Exception as exc:
            raise compose_error(exc, overrides, check=then or validate_config) from None
        if multirun:
            continue
        where = run_dir(cfg)
        with open_dict(cfg):
            cfg.pop("hydra")
            if where is not None:  # what ${hydra:runtime.output_dir} will say in the job
                cfg.paths.output_dir = str(where)
        try:
            validate_config(cfg, run_dir=where, machine=True)
            if then is not None:
                then(cfg)
        except OmegaConfBaseException as exc:
            raise compose_error(exc, overrides) from None
