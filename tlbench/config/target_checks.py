"""The allow-list of tlbench.config.allow_list applied to what an entry point is handed, before
Hydra starts: its command line (`check_command_line`: every `_target_` set, swept or not, and
every `_target_` of the composed config, the `hydra` node included, plus the classes Hydra's
logging config would build) and the run dir given to `resume=` (`check_run_dir`: its saved
.hydra/ files, which someone else may have written).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from tlbench.config import allow_list
from tlbench.config.overrides import split_argv
from tlbench.errors import TlbenchError

NOT_OVERRIDE = "<not an override>"  # the key of a saved entry that is no override


def check_command_line(argv: list[str], config_name: str = "train") -> None:
    """The command line of an entry point before Hydra starts: every `_target_` it sets (in every
    job of a sweep) and every `_target_` of its composed config, the `hydra` node included --
    Hydra instantiates `hydra.callbacks` at startup, before the task runs. For a sweep the config
    is composed without the swept values, as Hydra composes the one it builds callbacks from."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from tlbench.config import compose

    rerun = next((a for a in argv if a.startswith("--experimental-rerun")), None)
    if rerun is not None:
        raise TlbenchError(
            "tlbench does not take Hydra's --experimental-rerun: it unpickles the file it names "
            "(a pickle can run any code) and skips every check tlbench makes",
            key="--experimental-rerun",
            value=rerun.partition("=")[2] or None,
            fix="continue a run with resume=<run dir>, or repeat it with its overrides",
        )
    args = split_argv(argv)[1]
    for key, target in override_targets(args):
        allow_list.resolve(target, key)
    try:
        parsed = OverridesParser.create().parse_overrides(args)
        plain = [a for a, o in zip(args, parsed, strict=True) if not o.is_sweep_override()]
        cfg = compose(plain, config_name=config_name, return_hydra_config=True)
    except Exception:
        return  # Hydra reports it (and runs nothing): tlbench.config.preflight words it
    allow_list.check_config(cfg)
    check_logging(cfg)


def override_targets(overrides, strict: bool = False):
    """(key, `_target_`) set by a list of override strings (`+x._target_=...`, `x={_target_: ...}`),
    sweeps included. An entry that does not parse is left to Hydra's own error, unless `strict`
    (a saved list): then it, or a flag (`--experimental-rerun=<pickle>` would make Hydra unpickle
    a file), is refused as not an override."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for text in overrides or []:
        try:
            if str(text).startswith("-"):
                raise ValueError("a flag")
            o = parser.parse_overrides([str(text)])[0]
        except Exception:
            if strict:
                yield NOT_OVERRIDE, text
            continue
        key = o.key_or_group
        values = list(o.sweep_iterator()) if o.is_sweep_override() else [o.value()]
        for v in values:
            if key == "_target_" or key.endswith("._target_"):
                yield key.removesuffix("_target_").rstrip("."), v
            else:
                yield from allow_list.walk(v, key)


def _saved_targets(node) -> list:
    """(key, `_target_`) of a saved .hydra file: its nodes and its override lists."""
    found = list(allow_list.walk(node))
    lists = [node] if isinstance(node, list) else []
    overrides = (node.get("hydra") or {}).get("overrides") if isinstance(node, dict) else None
    if isinstance(overrides, dict):
        lists = [overrides.get("hydra"), overrides.get("task")]
    for entries in lists:
        found += list(override_targets(entries, strict=True))
    return found


def check_run_dir(run_dir) -> None:
    """The saved configs of a run dir given to `resume=` (someone may have handed it over): every
    `_target_` in .hydra/config.yaml and hydra.yaml, and in the override lists of overrides.yaml
    and hydra.yaml, before anything of them is used."""
    for name in ("overrides.yaml", "hydra.yaml", "config.yaml"):
        path = Path(run_dir) / ".hydra" / name
        try:
            node = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        except FileNotFoundError:
            continue
        except Exception as exc:
            raise TlbenchError(
                f"{path} cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0]})",
                key="resume",
                value=str(run_dir),
                fix="resume only a run dir tlbench wrote",
            ) from None
        for key, target in _saved_targets(node):
            try:
                allow_list.resolve(target, key)
            except TlbenchError as exc:
                what = (
                    f"holds {target!r}, which is not an override"
                    if key == NOT_OVERRIDE
                    else f"sets {key}._target_={target!r}, which "
                    + exc.problem.removeprefix("this _target_ ")
                )
                raise TlbenchError(
                    f"the run dir's .hydra/{name} {what}; resuming it could run code that is not "
                    "tlbench's (nothing in it was run or changed)",
                    key="resume",
                    value=str(run_dir),
                    allowed=allow_list.ALLOWED,
                    fix="resume only run dirs you trust, or remove that entry",
                ) from None


STREAMS = ("ext://sys.stdout", "ext://sys.stderr")


def check_logging(cfg) -> None:
    """Hydra hands `hydra.job_logging` / `hydra.hydra_logging` to logging.config.dictConfig,
    which calls the class a `class` or `()` key names (with the other keys as arguments) and
    imports whatever an `ext://` value names: only logging's own handlers, formatters and
    filters, the standard streams, and interpolations in `filename` only."""
    for root in ("hydra.job_logging", "hydra.hydra_logging"):
        node = OmegaConf.select(cfg, root)
        if node is not None:
            _check_logging_node(OmegaConf.to_container(node, resolve=False), root)


def _check_logging_node(node, key: str) -> None:
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for k, v in items:
        here = f"{key}.{k}"
        if isinstance(v, (dict, list)):
            _check_logging_node(v, here)
            continue
        text = str(v)
        if (
            (k in ("class", "()") and not _logging_class(text))
            or (text.startswith("ext://") and text not in STREAMS)
            or ("${" in text and k != "filename")
        ):
            raise TlbenchError(
                "Hydra's logging config may name only logging's own handlers, formatters and "
                "filters, and ext://sys.stdout or ext://sys.stderr (logging calls what it names)",
                key=here,
                value=v,
                fix="use e.g. logging.FileHandler or logging.StreamHandler, or drop the entry",
            )


def _logging_class(name: str) -> bool:
    import inspect
    import logging
    import logging.handlers

    module, _, attr = name.rpartition(".")
    if module not in ("logging", "logging.handlers"):
        return False
    obj = getattr(logging if module == "logging" else logging.handlers, attr, None)
    bases = (logging.Handler, logging.Formatter, logging.Filter)
    return inspect.isclass(obj) and issubclass(obj, bases)
