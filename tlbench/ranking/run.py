"""`rank(cfg)`: every candidate's frozen features once, then probes and estimators on them.

Every candidate is resolved, validated and built before any feature is computed, so a missing
weights file fails in seconds. Features go through tlbench.training.feature_cache as those of a
`strategy=transfer` run of the same model, so later rankings and runs share them.
Why: docs/architecture.md, "Ranking sources".
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from threadpoolctl import threadpool_limits

from tlbench.config.values import switch
from tlbench.errors import one_of, require
from tlbench.models import registry
from tlbench.ranking import candidates as cands
from tlbench.ranking import estimators, output, probes
from tlbench.training import feature_cache
from tlbench.training.build import wire
from tlbench.training.device import accelerator_kind, choose_precision

log = logging.getLogger("tlbench.rank")

# These matrices are small (n x d with n, d in the hundreds to thousands): one BLAS thread does
# them fastest, and threads fight torch's and other processes' for cores (BENCHMARKS.md, "Small
# measurements").
BLAS_THREADS = 1
SPLITS = ("train_val", "all")
METRICS = ("linear_probe", "knn", "logme", "hscore", "transrate", "leep", "nce")
# The strategy a ranked source stands for: frozen backbone, head only (as conf/strategy/transfer).
STRATEGY = {"name": "transfer", "pretrained": True, "trainable": ["head"], "train_bn": False}


def _build(c: cands.Candidate, cfg: DictConfig):
    """Datamodule with the candidate's preprocessing, and the network with its weights: the
    build path of training (tlbench.training.build.wire), seeded the same way, so a random:
    control is the very network a `strategy=transfer model.weights=null` run with that seed
    starts from. The ranking reads train and val only unless splits=all (the test split is often
    most of the images: Fashion-MNIST 5-9 at 20 labels/class, 5,000 of 5,700)."""
    pre = registry.describe(
        OmegaConf.create(c.model), c.pretrained, image_size=cfg.data.get("image_size")
    )
    keep = ("train", "val") if cfg.splits == "train_val" else None
    return wire(cfg, pre, c.model, {**STRATEGY, "pretrained": c.pretrained}, splits=keep)


def _arrays(cached, split: str) -> tuple[np.ndarray, np.ndarray]:
    """One split of the cache's (head inputs, labels) as float64 / int numpy arrays."""
    x, y = cached.features[split]
    return x.float().cpu().reshape(len(x), -1).numpy().astype(np.float64), y.cpu().numpy()


def _timed(row: dict, name: str, fn, *args) -> None:
    start = time.perf_counter()
    row[name] = float(fn(*args))
    row["seconds"][name] = round(time.perf_counter() - start, 3)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def measure(c, datamodule, module, cfg, precision: str, device: torch.device) -> dict:
    """Features (cached), probes and estimators of one candidate; accuracies as fractions."""
    row = {"candidate": c.label, "spec": c.spec, "kind": c.kind, "arch": c.arch, "added": c.added}
    if c.kind == "checkpoint":
        row["source_path"] = c.model["weights"]  # absolute: ranking_check matches runs on it
    row.update(weights=module.weights_origin, status="ok", seconds={}, **_baselines(c, module))
    cached, seconds, detail = feature_cache.prepare(
        module, datamodule, cfg.paths.cache_dir, precision, device
    )
    row["seconds"]["features"] = round(seconds, 3)
    if cached is None:
        return {**row, "status": "failed", "error": detail}
    row["feature_cache"] = detail
    row["cache_hit"] = cached.hit
    tx, ty = _arrays(cached, "train")
    vx, vy = _arrays(cached, "val")
    row.update(feature_dim=int(tx.shape[1]), n_train=len(ty), n_val=len(vy))
    head = cands.source_head(c, module.head_names[0])
    if head is not None and head[0].shape[1] == tx.shape[1]:
        row["source_classes"] = int(head[0].shape[0])
    else:
        head = None
    score(row, (tx, ty, vx, vy), head, cfg.seed)
    return row


def _baselines(c, module) -> dict:
    """What the ranking's baselines need (report.ranking_measures): the backbone's parameter
    count (the new head excluded: it depends on the target classes) and the ImageNet top-1 its
    weights are published with (registry.imagenet_top1; None for random and checkpoints)."""
    heads = tuple(f"{h}." for h in module.head_names)
    params = sum(p.numel() for n, p in module.net.named_parameters() if not n.startswith(heads))
    top1 = registry.imagenet_top1(c.model) if c.kind != "random" else None
    return {"params": int(params), "imagenet_top1": top1}


def score(row: dict, arrays, head=None, seed: int = 0) -> dict:
    """Probes and estimators on (train x, train y, val x, val y) into `row` (with seconds each);
    `head` = the source classifier's (weight, bias) for LEEP/NCE, or None."""
    tx, ty, vx, vy = arrays
    row.setdefault("seconds", {})
    with threadpool_limits(limits=BLAS_THREADS):
        _timed(row, "linear_probe", probes.linear_probe, tx, ty, vx, vy, seed)
        _timed(row, "knn", probes.knn, tx, ty, vx, vy)
        for name, fn in estimators.FEATURE_ESTIMATORS.items():
            _timed(row, name, fn, tx, ty)
        if head is not None:
            probs = _softmax(tx @ head[0].T + head[1])
            for name, fn in estimators.SOURCE_ESTIMATORS.items():
                _timed(row, name, fn, probs, ty)
    return row


def check(cfg: DictConfig) -> list[cands.Candidate]:
    """Every setting and candidate, before anything is built or any file is written (also before
    Hydra starts, from the command line): the listed candidates and, unless
    random_controls=false, a random control for each source's architecture, all validated
    (names, weights files, sizes)."""
    require(cfg, "candidates", example="'candidates=[efficientnet_lite0,random:lenet5]'")
    if cfg.splits not in SPLITS:
        raise one_of("splits", cfg.splits, SPLITS, what="feature splits setting")
    if cfg.rank_by not in METRICS:
        raise one_of("rank_by", cfg.rank_by, METRICS, what="ranking metric")
    switch(cfg, "random_controls")
    found = cands.resolve_all(cfg.candidates)
    found = cands.with_controls(found) if cfg.random_controls else found
    for c in found:
        cands.validate(c, cfg.data.get("image_size"))
    return found


def rank(cfg: DictConfig) -> dict:
    """Rank `cfg.candidates` on `cfg.data`; write ranking.md/.csv/.json and return the result."""
    start = time.perf_counter()
    found = check(cfg)
    log.info("random controls added: %s", [c.label for c in found if c.added] or "none")
    built = [(c, *_build(c, cfg)) for c in found]  # weights load here: fails before any feature
    kind = accelerator_kind(str(cfg.device).split(":")[0])
    device = torch.device(cfg.device if kind == "cuda" and cfg.device != "auto" else kind)
    precision, why = choose_precision(cfg.precision, kind)
    log.info("features on %s, precision %s (%s)", device, precision, why)
    rows = []
    for c, datamodule, module in built:
        log.info("ranking %s", c.label)
        rows.append(measure(c, datamodule, module, cfg, precision, device))
    datamodule = built[0][1]
    data = {
        "name": getattr(datamodule, "name", None),
        **{
            k: OmegaConf.to_container(v) if OmegaConf.is_config(v) else v
            for k, v in cfg.data.items()
            if k in output.DATA_KEYS
        },
        "sizes": datamodule.sizes(),
        "num_classes": datamodule.num_classes,
    }
    result = output.assemble(rows, data, cfg.rank_by, precision, str(device))
    result["seconds_total"] = round(time.perf_counter() - start, 2)
    output.write(Path(cfg.paths.output_dir), result)
    print(output.markdown(result), flush=True)
    return result
