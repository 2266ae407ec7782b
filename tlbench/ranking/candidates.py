"""Candidate sources: `candidates=[...]` entries -> model configs with the weights they stand for.

`<model name>` (its default pretrained weights), a tlbench run dir or `.ckpt` (the architecture
from its checkpoint, the backbone weights through `model.weights=`), `random:<model>` (the same
architecture randomly initialised: the control). `with_controls` adds a random control for every
listed source's architecture. Why: docs/architecture.md, "Ranking sources".
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from torch import nn

from tlbench import checkpoint_file
from tlbench.config.app import CONF_DIR, model_node
from tlbench.errors import TlbenchError
from tlbench.models import checkpoint_source, heads, registry

RANDOM = "random:"
CHECKPOINT_SUFFIXES = (".ckpt", ".pth", ".pt")


@dataclass
class Candidate:
    spec: str  # as the user wrote it
    label: str  # short name in tables
    kind: str  # pretrained | checkpoint | random
    model: dict  # a model config (conf/model/*.yaml keys)
    pretrained: bool
    added: bool = False  # a random control the ranking added (random_controls), not listed

    @property
    def arch(self) -> str:
        """The architecture, as `model=` spells it (random controls match on it)."""
        return registry.spelling(self.model)


def model_config(name: str) -> dict:
    """The config `model=<name>` composes to: conf/model/<name>.yaml, else a generated node."""
    if name.startswith("timm/"):
        return model_node(name[len("timm/") :], "timm")
    path = CONF_DIR / "model" / f"{name}.yaml"
    if path.is_file():
        return OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    return model_node(name, "torchvision")


def _looks_like_path(spec: str) -> bool:
    return (
        "/" in spec and not spec.startswith("timm/") or spec.endswith(CHECKPOINT_SUFFIXES)
    ) or Path(spec).exists()


def _from_checkpoint(spec: str) -> Candidate:
    if not Path(spec).exists():
        raise TlbenchError(
            "the weights file or run directory does not exist",
            key="candidates",
            value=spec,
            fix="give an existing tlbench run directory or .ckpt file",
        )
    ckpt = checkpoint_source.resolve(spec)
    model = (checkpoint_source.read(ckpt).get("hyper_parameters") or {}).get("model")
    if not model:
        raise TlbenchError(
            "the file does not say which architecture it holds (no tlbench hyper-parameters)",
            key="candidates",
            value=spec,
            allowed="a tlbench run dir or its .ckpt; a plain state dict needs its model",
            fix="rank a tlbench checkpoint, or train from the .pth with model=<arch> model.weights=<file>",
        )
    run = checkpoint_file.run_dir_of(ckpt)
    model = {**model, "weights": str(Path(spec).resolve())}
    arch = registry.spelling(model)
    return Candidate(spec, f"{arch}@{run.name}", "checkpoint", model, True)


def resolve(spec: str) -> Candidate:
    """One `candidates` entry -> Candidate; a TlbenchError names the entry when it is wrong."""
    spec = str(spec).strip()
    if spec.startswith(RANDOM):
        name = spec[len(RANDOM) :]
        return Candidate(spec, spec, "random", {**model_config(name), "weights": None}, False)
    if _looks_like_path(spec):
        return _from_checkpoint(spec)
    model = model_config(spec)
    if model.get("weights") is None:
        raise TlbenchError(
            f"{spec} has no pretrained weights of its own",
            key="candidates",
            value=spec,
            allowed="a model with pretrained weights, random:<model>, or a tlbench run dir",
            fix=f"use random:{spec} (the random-init control) or the run dir of a {spec} you trained",
        )
    return Candidate(spec, spec, "pretrained", model, True)


def resolve_all(specs) -> list[Candidate]:
    if specs is None or isinstance(specs, str) or len(specs) == 0:
        raise TlbenchError(
            "give a list of candidate sources",
            key="candidates",
            value=specs,
            allowed="model names (pretrained), random:<model>, tlbench run dirs or .ckpt files",
            fix="e.g. 'candidates=[efficientnet_lite0,random:efficientnet_lite0]'",
        )
    found = [resolve(s) for s in specs]
    labels = [c.label for c in found]
    twice = sorted({x for x in labels if labels.count(x) > 1})
    if twice:
        raise TlbenchError(
            f"candidates listed twice: {', '.join(twice)}",
            key="candidates",
            value=list(specs),
            fix="list each source once",
        )
    return found


def with_controls(found: list[Candidate]) -> list[Candidate]:
    """`found`, then `random:<arch>` for each architecture of a pretrained / checkpoint source
    that has no random control listed: every source is held to its own random init. The control
    is what `random:<arch>` composes to (conf/model), as if the user had listed it."""
    have = {c.arch for c in found if c.kind == "random"}
    added = []
    for c in found:
        if c.kind != "random" and c.arch not in have:
            have.add(c.arch)
            added.append(replace(resolve(RANDOM + c.arch), added=True))
    return found + added


def validate(candidate: Candidate, image_size: int | None) -> None:
    """registry.validate, the check `python -m tlbench` runs (names, weights files, sizes); a
    problem with the model is named as the candidate the user listed."""
    try:
        registry.validate(OmegaConf.create(candidate.model), image_size, candidate.pretrained)
    except TlbenchError as exc:
        if exc.key is None or not str(exc.key).startswith("model"):
            raise
        raise TlbenchError(
            f"{exc.key}={exc.value!r}: {exc.problem}",
            key="candidates",
            value=candidate.spec,
            allowed=exc.allowed,
            fix=exc.fix,
        ) from None


def _linear(module: nn.Module) -> tuple[np.ndarray, np.ndarray] | None:
    if not isinstance(module, nn.Linear) or module.bias is None:
        return None
    return module.weight.detach().double().numpy(), module.bias.detach().double().numpy()


def source_head(candidate: Candidate, head_name: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The source model's own classifier (weight, bias), for LEEP/NCE; None when it has none
    (random init, timm models, heads that are not one Linear layer)."""
    model = candidate.model
    if candidate.kind == "checkpoint":
        state = checkpoint_source.read(model["weights"]).get("state_dict", {})
        w, b = state.get(f"net.{head_name}.weight"), state.get(f"net.{head_name}.bias")
        if w is None or b is None or w.ndim != 2:
            return None
        return w.double().numpy(), b.double().numpy()
    net = registry.own_net(model) if candidate.kind == "pretrained" else None
    if net is None:
        return None
    names = heads.find_heads(net, getattr(net, "num_classes", 1000))
    return _linear(net.get_submodule(names[0])) if names else None
