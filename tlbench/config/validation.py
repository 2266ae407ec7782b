"""Whole-config validation: every problem a config can have, found before any data is read or any
model is built, each reported as one paragraph (key, value, what is allowed, the fix).

What is checked, cheapest first:
- keys: the top level and `paths` against conf/train.yaml, `strategy` against
  `tlbench.training.strategies.KEYS`, `model` against the keys of conf/model/*.yaml, and every node with a
  `_target_` (data, optimizer, scheduler, trainer, logger.*, callbacks.*) against its
  constructor's signature (`inspect`, following `**kwargs` up the class hierarchy). Hydra already
  refuses `data.foo=1` for a missing key; this also catches `+data.foo=1` and typos in files.
- `_target_`s: only from the allow-list of tlbench.config.instantiate (nothing is imported otherwise).
- types: simple annotations of those constructors (int, float, bool, str, lists, Literal, unions);
  anything the checker does not understand is accepted, so it never blocks a valid config.
- values: positive finite learning rate, epochs, batch size, image size, label budgets, split
  fractions, class names where they are known without reading data, missing dataset folders,
  `ckpt_path` / `resume` paths, top-level switches.
The model name (with close-match suggestions) and its input size are checked by
tlbench.models.registry.validate, which train.validate calls right after this.

`preflight(argv)` runs in `main()` before Hydra starts: it composes the config of every job the
command line asks for and turns Hydra's own composition errors (`model=resnet19`, an override of a
missing key, a malformed override) into the same one-paragraph style.
"""

from __future__ import annotations

import functools
import inspect
import math
import types
import typing
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from tlbench.errors import TlbenchError, nearest, one_of

TARGET_GROUPS = ("data", "optimizer", "scheduler", "trainer")  # single nodes with a _target_
TARGET_MAPS = ("logger", "callbacks")  # name -> node with a _target_ (or null)
# Constructor arguments train.py passes itself (instantiate(..., precision=...)): the config's
# value is replaced, so its type is not the constructor's business.
INJECTED = {
    "trainer": {"callbacks", "logger", "precision"},
    "data": {"preprocess"},
}
# Class names known without reading any file (others are checked at setup, same message style).
KNOWN_CLASSES = {
    "DigitsDataModule": [str(i) for i in range(10)],
    "CIFAR10DataModule": [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ],
}
DATA_DIR_KEYS = ("root", "train_dir", "val_dir", "test_dir")


# -- entry point ------------------------------------------------------------------------------
def validate_config(cfg: DictConfig) -> None:
    """Raise the first TlbenchError found in `cfg`; return None when it is sound."""
    _check_keys(cfg)
    _check_values(cfg)  # first: a bad top-level value is named as such, not where it is used
    for group in TARGET_GROUPS:
        node = cfg.get(group)
        if node:  # scheduler=none is an empty node: no scheduler
            _check_target_node(node, group)
    for group in TARGET_MAPS:
        for name, node in (cfg.get(group) or {}).items():
            if node is not None:
                _check_target_node(node, f"{group}.{name}")


# -- keys -------------------------------------------------------------------------------------
@functools.cache
def _schema() -> dict[str, set[str]]:
    """Allowed keys read from the shipped config files, so a key added there is allowed here."""
    from tlbench import config
    from tlbench.config import app
    from tlbench.training import strategies

    base = OmegaConf.load(config.CONF_DIR / "train.yaml")
    groups = set()
    for entry in base.get("defaults", []):
        if isinstance(entry, (dict, DictConfig)):
            groups |= {str(k).split("@")[0].split("/")[0] for k in entry}
    groups -= {"hydra", "experiment", "override hydra"}
    model_keys = set(app.model_node("x", "torchvision"))
    for f in (config.CONF_DIR / "model").glob("**/*.yaml"):
        model_keys |= {k for k in OmegaConf.load(f) if k != "defaults"}
    # Experiment presets (@package _global_) may define helper keys of their own at the top.
    helpers = set()
    for f in (config.CONF_DIR / "experiment").glob("**/*.yaml"):
        helpers |= {str(k) for k in OmegaConf.load(f) if k not in ("defaults", "hydra")}
    return {
        "": {k for k in base if k not in ("defaults", "hydra")} | groups | helpers,
        "paths": set(base.get("paths", {})),
        "model": model_keys,
        "strategy": set(strategies.KEYS),
    }


def _unknown_key(key: str, allowed: set[str], value) -> TlbenchError:
    name = key.rsplit(".", 1)[-1]
    close = nearest(name, allowed, n=3)
    return TlbenchError(
        "unknown config key",
        key=key,
        value=value,
        allowed=", ".join(sorted(allowed)),
        fix=f"check the spelling (did you mean {' or '.join(repr(c) for c in close)}?); a key "
        "added with + must be one the component accepts",
    )


def _raw(node: DictConfig, key: str):
    """A value for messages, without resolving interpolations (which may fail outside Hydra)."""
    try:
        v = node._get_node(key)._value()  # noqa: SLF001 (OmegaConf has no public unresolved getter)
        return OmegaConf.to_container(v) if isinstance(v, (DictConfig, ListConfig)) else v
    except Exception:
        return "?"


def _check_keys(cfg: DictConfig) -> None:
    schema = _schema()
    for key in cfg:
        if key not in schema[""]:
            raise _unknown_key(str(key), schema[""], _raw(cfg, key))
    from tlbench.training import strategies

    if isinstance(cfg.get("strategy"), DictConfig):
        strategies.check_keys(cfg.strategy)  # its own message: "unknown strategy key"
    for group in ("paths", "model"):
        node = cfg.get(group)
        if isinstance(node, DictConfig):
            for key in node:
                if key not in schema[group]:
                    raise _unknown_key(f"{group}.{key}", schema[group], _raw(node, key))


# -- _target_ nodes ---------------------------------------------------------------------------
def _locate(target: str, key: str):
    from hydra.utils import get_object

    from tlbench.config.instantiate import ALLOWED_PREFIXES

    if not str(target).startswith(ALLOWED_PREFIXES):
        raise TlbenchError(
            "this _target_ is not in the allow-list of modules tlbench instantiates, so it is "
            "never imported or called",
            key=f"{key}._target_",
            value=target,
            allowed=", ".join(p + "*" for p in ALLOWED_PREFIXES),
            fix="use a class from an allowed module, or add its module to "
            "tlbench.config.instantiate.ALLOWED_PREFIXES",
        )
    try:
        return get_object(str(target))
    except Exception as exc:
        raise TlbenchError(
            f"this _target_ cannot be imported ({type(exc).__name__})",
            key=f"{key}._target_",
            value=target,
            fix="check the dotted path of the class",
        ) from None


def _parameters(obj) -> tuple[dict[str, inspect.Parameter], dict[str, object], bool]:
    """Named parameters (following **kwargs through the class hierarchy), their type hints, and
    whether arbitrary keywords are accepted in the end."""
    params: dict[str, inspect.Parameter] = {}
    hints: dict[str, object] = {}
    fns = (
        [c.__init__ for c in inspect.getmro(obj) if "__init__" in vars(c)]
        if inspect.isclass(obj)
        else [obj]
    )
    for fn in fns:
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            return params, hints, True
        try:
            fn_hints = typing.get_type_hints(fn)
        except Exception:  # unresolvable forward references: no type checks for this one
            fn_hints = {}
        var_kw = False
        for name, p in sig.parameters.items():
            if p.kind is p.VAR_KEYWORD:
                var_kw = True
            elif p.kind is not p.VAR_POSITIONAL and name != "self" and name not in params:
                params[name] = p
                if name in fn_hints:
                    hints[name] = fn_hints[name]
        if not var_kw:
            return params, hints, False
        if fn is object.__init__:
            break
    return params, hints, True


def _check_target_node(node, key: str) -> None:
    if not isinstance(node, DictConfig):
        raise TlbenchError(
            "this config node must be a mapping with a _target_",
            key=key,
            value=node,
            fix=f"choose one of the {key.split('.')[0]} configs",
        )
    from tlbench.config.instantiate import _nested_targets, target_of

    target = target_of(node, key)
    obj = _locate(target, key)

    for inner_key, inner in _nested_targets(node, key):  # Hydra would build these too
        _locate(inner, inner_key.rsplit("._target_", 1)[0])
    params, hints, open_ended = _parameters(obj)
    group = key.split(".")[0]
    for name in node:
        if str(name).startswith("_") and str(name).endswith("_"):
            continue  # _target_, _partial_, _convert_, _recursive_, _args_
        if name not in params:
            if open_ended:
                continue
            raise _unknown_key(
                f"{key}.{name}", set(params) - INJECTED.get(group, set()), _raw(node, name)
            )
        if name in INJECTED.get(group, set()) or name not in hints:
            continue
        value = _value(node, name, key)
        if _matches(value, hints[name]) is False:
            raise TlbenchError(
                f"wrong type ({type(value).__name__}) for {target.rsplit('.', 1)[-1]}({name}=...)",
                key=f"{key}.{name}",
                value=value,
                allowed=_describe(hints[name]),
                fix=f"give {key}.{name} a value of that type",
            )


def _value(node: DictConfig, name: str, key: str):
    try:
        v = node[name]
    except OmegaConfBaseException as exc:
        raise TlbenchError(
            f"this value cannot be resolved ({type(exc).__name__}: {str(exc).splitlines()[0]})",
            key=f"{key}.{name}",
            value=_raw(node, name),
            fix="check the ${...} interpolation it uses",
        ) from None
    return OmegaConf.to_container(v, resolve=True) if isinstance(v, (DictConfig, ListConfig)) else v


def _matches(value, tp) -> bool | None:
    """True / False when the annotation settles it, None when this checker cannot tell."""
    if tp is typing.Any or tp is inspect.Parameter.empty:
        return True
    if tp is type(None) or tp is None:
        return value is None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        results = [_matches(value, a) for a in typing.get_args(tp)]
        return True if True in results else (None if None in results else False)
    if origin is typing.Literal:
        return value in typing.get_args(tp)
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if origin in (list, tuple, set, frozenset) or tp in (list, tuple):
        return isinstance(value, (list, tuple)) or None
    if origin is dict or tp is dict:
        return isinstance(value, dict) or None
    if value is None:
        return False if isinstance(tp, type) and tp in (int, float, str, bool) else None
    return None


def _describe(tp) -> str:
    return str(tp).replace("typing.", "").replace("<class '", "").replace("'>", "")


# -- values -----------------------------------------------------------------------------------
def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _positive_int(v, key: str, example: str, allow_none: bool = False) -> None:
    if v is None and allow_none:
        return
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise TlbenchError(
            "must be a whole number >= 1",
            key=key,
            value=v,
            allowed="an integer >= 1" + (" or null" if allow_none else ""),
            fix=f"e.g. {key}={example}",
        )


def _check_values(cfg: DictConfig) -> None:
    seed = cfg.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TlbenchError(
            "the seed must be an integer", key="seed", value=seed, fix="e.g. seed=42"
        )
    for key in ("test_after_fit", "skip_completed"):
        if key in cfg and not isinstance(cfg.get(key), bool):
            raise TlbenchError(
                "must be true or false", key=key, value=cfg.get(key), allowed="true, false"
            )
    if cfg.get("channels_last") not in ("auto", True, False):
        raise TlbenchError(
            "unknown channels_last setting",
            key="channels_last",
            value=cfg.get("channels_last"),
            allowed="auto, true, false",
        )
    _check_optimizer(cfg)
    if cfg.get("trainer") is not None:
        _positive_int(cfg.trainer.get("max_epochs"), "trainer.max_epochs", "10")
    data = cfg.get("data")
    if data is not None:
        _check_data(data)
    for key, kind in (("ckpt_path", "file"), ("resume", "dir")):
        v = cfg.get(key)
        if v is None:
            continue
        p = Path(str(v)).expanduser()
        if not (p.is_file() if kind == "file" else p.is_dir()):
            raise TlbenchError(
                f"no such {'file' if kind == 'file' else 'directory'}",
                key=key,
                value=str(v),
                allowed="a Lightning .ckpt file" if kind == "file" else "an existing run dir",
                fix=f"check the path (relative paths start at {Path.cwd()})",
            )


def _check_optimizer(cfg: DictConfig) -> None:
    opt = cfg.get("optimizer")
    if opt is None:
        raise TlbenchError(
            "no optimizer is configured", key="optimizer", value=None, fix="optimizer=adamw"
        )
    lr = opt.get("lr")
    if not _is_number(lr) or not math.isfinite(lr) or lr <= 0:
        raise TlbenchError(
            "the learning rate must be a positive number",
            key="optimizer.lr",
            value=lr,
            allowed="a finite number > 0 (typical: 1e-4 .. 1e-1)",
            fix="e.g. optimizer.lr=1e-3",
        )


def _check_data(data: DictConfig) -> None:
    from tlbench.data.base import check_budget, check_fraction

    if "batch_size" in data:
        _positive_int(data.get("batch_size"), "data.batch_size", "32")
    size = data.get("image_size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise TlbenchError(
            "the image size is a side length in pixels",
            key="data.image_size",
            value=size,
            allowed="an integer >= 1 (the model's minimum is checked next), or null for the "
            "backbone's pretrained size",
            fix="e.g. data.image_size=64",
        )
    check_budget(data.get("samples_per_class"), data.get("train_fraction"))
    if "val_fraction" in data:
        check_fraction("data.val_fraction", data.get("val_fraction"))
    if "test_fraction" in data:
        check_fraction("data.test_fraction", data.get("test_fraction"), allow_zero=True)
    _check_classes(data)
    _check_folders(data)


def _check_classes(data: DictConfig) -> None:
    classes = data.get("classes")
    if classes is None:
        return
    if not isinstance(classes, ListConfig) or not classes:
        raise TlbenchError(
            "data.classes is a list of class names",
            key="data.classes",
            value=_raw(data, "classes"),
            allowed="a non-empty list, or null for all classes",
            fix="e.g. 'data.classes=[cat,dog]' (quote it in a shell)",
        )
    cls_name = str(data.get("_target_", "")).rsplit(".", 1)[-1]
    known = KNOWN_CLASSES.get(cls_name)
    if known is None:
        try:
            known = getattr(_locate(data._target_, "data"), "class_list", None)
        except TlbenchError:
            known = None
    if known is None:
        return  # class names come from the files: checked at setup with the same message
    for c in classes:
        if str(c) not in known:
            raise one_of("data.classes", str(c), known, what="class name")


def _check_folders(data: DictConfig) -> None:
    """A dataset folder that does not exist (and will not be downloaded) is an error now, not
    after the model is built."""
    if data.get("download"):
        return
    for key in DATA_DIR_KEYS:
        if key not in data:
            continue
        v = _value(data, key, "data")
        if v is None:
            continue
        from tlbench.data.files import resolve

        p = resolve(str(v))
        if not p.is_dir():
            can_download = "download" in data
            raise TlbenchError(
                f"the dataset folder {p} does not exist",
                key=f"data.{key}",
                value=str(v),
                fix="point it at your copy of the dataset"
                + (
                    ", or set data.download=true on a machine with internet access"
                    if can_download
                    else ""
                )
                + " (see the comments in conf/data/<dataset>.yaml for the layout)",
            )


# -- Hydra composition errors -----------------------------------------------------------------
def compose_error(exc: BaseException, overrides: list[str]) -> TlbenchError:
    """Hydra's composition errors as one paragraph naming the override and the allowed values."""
    from hydra.errors import MissingConfigException

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
    if "Could not override" in text or "Could not append" in text or "Key '" in text:
        key = text.split("'")[1] if "'" in text else None
        value = next(
            (o.partition("=")[2] for o in overrides if o.lstrip("+~").startswith(f"{key}=")), None
        )
        return TlbenchError(
            f"this key does not exist in the config ({first})",
            key=key,
            value=value,
            fix="check the spelling against `python -m tlbench --cfg job`; + adds a key only "
            "where the component accepts it",
        )
    return TlbenchError(
        f"the command line cannot be turned into a config: {' '.join(text.split())}",
        key="overrides",
        value=" ".join(overrides),
        fix="check the override syntax (key=value, group=option, +new_key=value); "
        "see `python -m tlbench --help`",
    )


def job_overrides(argv: list[str]) -> list[list[str]] | None:
    """The override list of every job the command line asks for (the basic sweeper's expansion),
    or None when it cannot be worked out here (custom sweepers, --help, ...)."""
    args = [a for a in argv if not a.startswith("-")]
    if any(
        a.startswith(
            (
                "--help",
                "-h",
                "--cfg",
                "-c",
                "--info",
                "--hydra-help",
                "--shell",
                "--run",
                "--version",
            )
        )
        for a in argv
    ):
        return None
    multirun = any(a in ("-m", "--multirun") for a in argv)
    if not multirun:
        return [args]
    try:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser

        parsed = OverridesParser.create().parse_overrides(args)
        if any(o.key_or_group.startswith("hydra/sweeper") for o in parsed):
            return None
        batches = BasicSweeper.split_arguments(parsed, max_batch_size=None)
        return [list(job) for batch in batches for job in batch]
    except Exception:
        return None  # Hydra will report it itself


def preflight(argv: list[str], jobs: list[list[str]] | None, limit: int = 64) -> None:
    """Compose every job's config as Hydra will (the first `limit` of a sweep: ~0.3 s each), and
    raise Hydra's errors as TlbenchErrors."""
    from tlbench.config import compose

    if jobs is None:
        return
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        OverridesParser.create().parse_overrides([a for a in argv if not a.startswith("-")])
    except Exception as exc:
        raise compose_error(exc, argv) from None
    for overrides in jobs[:limit]:
        try:
            compose(overrides, return_hydra_config=True)
        except Exception as exc:
            raise compose_error(exc, overrides) from None
