"""`python -m tlbench.evaluate ckpt=<run dir | .ckpt> [data=<dataset>] [split=test]`.

Measures a trained checkpoint on one split of any dataset config (without data=, the data of the
run that wrote it: its images, classes and splits), with the checkpoint's own preprocessing:
loss, accuracy, top-5, macro-F1, per-class precision/recall/F1 (the definitions training logs:
tlbench.training.metrics), and a normalised confusion matrix (the figure training draws:
tlbench.training.visuals). Writes `evaluation.json` and `confusion_matrix.png` into a new run dir.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from tlbench import atomic
from tlbench.config import allow_list
from tlbench.config.instantiate import instantiate
from tlbench.errors import TlbenchError, one_of, require
from tlbench.inference import checkpoint, options
from tlbench.training import metrics, visuals

log = logging.getLogger("tlbench.evaluate")

SPLITS = ("test", "val", "train")


def _saved_config(ckpt: Path) -> Path:
    return checkpoint.run_dir_of(ckpt) / ".hydra" / "config.yaml"


def own_data(ckpt: Path) -> DictConfig:
    """The data config of the run that wrote `ckpt` (its .hydra/config.yaml), resolved: what
    evaluate measures on when no data= is given, so a run is evaluated on its own images, classes
    and splits. Its `_target_` must pass the allow-list (someone may have handed the dir over)."""
    saved = _saved_config(ckpt)
    fix = "choose the data to evaluate on, e.g. data=digits (conf/data/ lists the datasets)"
    if not saved.is_file():
        raise TlbenchError(
            f"no data= is given, and there is no {saved} naming the data {ckpt.name} was trained "
            "on (`python -m tlbench` writes one into every run dir)",
            key="data",
            value=None,
            fix=fix,
        )
    try:
        data = OmegaConf.to_container(OmegaConf.load(saved).data, resolve=True)
        if not isinstance(data, dict) or "_target_" not in data:
            raise ValueError(f"its data node is {type(data).__name__}, with no _target_")
    except Exception as exc:
        raise TlbenchError(
            f"no data= is given, and the data config of the run that wrote this checkpoint "
            f"({saved}) cannot be used here ({type(exc).__name__}: {str(exc).splitlines()[0]})",
            key="data",
            value=None,
            fix=fix,
        ) from None
    allow_list.resolve(data["_target_"], f"{saved}: data")
    return OmegaConf.create(data)


def class_mapping(
    data_names: list[str], ckpt_names: list[str], data_label: str, leave_out_data: bool = False
) -> np.ndarray:
    """Index in the data's classes -> index in the checkpoint's logits. Same names in any order
    are remapped; a class one side has and the other lacks is an error (its accuracy is undefined);
    `leave_out_data`: its fix says that without data= the run's own data is used."""
    data_names, ckpt_names = [str(n) for n in data_names], [str(n) for n in ckpt_names]
    missing = [n for n in ckpt_names if n not in data_names]
    extra = [n for n in data_names if n not in ckpt_names]
    if missing or extra:

        def show(names):
            return ", ".join(names[:10]) + (
                f" (+{len(names) - 10} more)" if len(names) > 10 else ""
            )

        problems = ([f"the data lacks [{show(missing)}]"] if missing else []) + (
            [f"the data has extra classes [{show(extra)}]"] if extra else []
        )
        raise TlbenchError(
            "the dataset's classes are not the checkpoint's: " + "; ".join(problems),
            key="data",
            value=data_label,
            allowed=f"data with exactly the checkpoint's classes ({show(ckpt_names)}), in any order",
            fix="pick matching data, or select its classes with data.classes=[...] when it has more"
            + (
                "; or leave out data= to evaluate it on the data it was trained on"
                if leave_out_data
                else ""
            ),
        )
    return np.array([ckpt_names.index(n) for n in data_names], dtype=np.int64)


@torch.inference_mode()
def collect_logits(module, batches, device: torch.device, precision: str = "auto"):
    """All logits (float32, on the CPU) and labels of `batches` ((images, labels) pairs)."""
    module = module.to(device)
    chosen = options.inference_precision(device, precision)
    logits, targets = [], []
    for x, y in batches:
        logits.append(module.logits_in(x.to(device), chosen).float().cpu())
        targets.append(y.cpu())
    return torch.cat(logits), torch.cat(targets), chosen


def check(cfg: DictConfig) -> DictConfig:
    """Every setting, before the checkpoint or the data is read; returns the data config to
    evaluate on (data=, else the run's own)."""
    options.validate("evaluate", cfg)
    require(cfg, "ckpt", example="ckpt=outputs/runs/<run dir>")
    if cfg.split not in SPLITS:
        raise one_of("split", cfg.split, SPLITS, what="split")
    path = checkpoint.resolve(cfg.ckpt)
    return own_data(path) if cfg.get("data") is None else cfg.data


def _data(cfg: DictConfig, data: DictConfig, loaded: checkpoint.Loaded):
    """The data config built with the checkpoint's preprocessing: (datamodule, its label, data
    class index -> logit index)."""
    pre = loaded.preprocess
    asked = data.get("image_size")
    if asked is not None and asked != pre.crop_size:
        log.info(
            "data.image_size=%s ignored: the checkpoint was trained at %d px", asked, pre.crop_size
        )
    datamodule = instantiate(data, "data", preprocess=pre.to_dict(), image_size=pre.crop_size)
    datamodule.prepare_data()  # downloads happen here only (data.download=true)
    datamodule.setup("test")
    label = getattr(datamodule, "name", data.get("_target_"))
    record = cfg.get("data") is not None and _saved_config(loaded.path).is_file()
    to_ckpt = torch.as_tensor(
        class_mapping(datamodule.class_names, loaded.class_names, label, leave_out_data=record)
    )
    split = datamodule.splits.get(cfg.split)
    if split is None or len(split.targets) == 0:
        raise TlbenchError(
            "this split of the data is empty",
            key="split",
            value=cfg.split,
            allowed=", ".join(SPLITS),
            fix="evaluate another split",
        )
    return datamodule, label, to_ckpt


def _write(result: dict, class_names: list[str], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    figure = visuals.confusion_figure(
        np.array(result["confusion_matrix"]),
        class_names,
        f"{result['model']['name']} ({result['strategy']}) on {result['data']}/"
        f"{result['split']}: accuracy {100 * result['accuracy']:.1f}%",
    )
    visuals.save_png(figure, out_dir / "confusion_matrix.png")
    atomic.write_text(out_dir / "evaluation.json", json.dumps(result, indent=2) + "\n")


def evaluate(cfg: DictConfig) -> dict:
    """Evaluate `cfg.ckpt` on `cfg.split` of `cfg.data`; write and return the results."""
    data = check(cfg)
    loaded = checkpoint.load(cfg.ckpt)
    datamodule, label, to_ckpt = _data(cfg, data, loaded)
    device = options.device(cfg.device)
    # The pixels training validated and tested on: the datamodule's own eval path (in-memory data
    # is transformed as whole batches on the device, files per sample in its workers).
    batches = datamodule.batches(
        cfg.split, device, train=False, batch_size=int(cfg.batch_size or datamodule.batch_size)
    )
    log.info("evaluating %s on %s/%s on %s", loaded.path, label, cfg.split, device)
    start = time.perf_counter()
    logits, targets, precision = collect_logits(loaded.module, batches, device, cfg.precision)
    seconds = time.perf_counter() - start
    out_dir = Path(cfg.paths.output_dir)
    result = {
        **loaded.describe(),
        "data": label,
        "split": cfg.split,
        "precision": precision,
        "device": str(device),
        **metrics.summary(logits, to_ckpt[targets], loaded.class_names),
        "seconds": round(seconds, 2),
        "images_per_second": round(len(targets) / max(seconds, 1e-9), 1),
        "output_dir": str(out_dir),
    }
    _write(result, loaded.class_names, out_dir)
    _print(result)
    return result


def _print(r: dict) -> None:
    top5 = "n/a" if r["top5_accuracy"] is None else f"{100 * r['top5_accuracy']:.1f}%"
    worst = sorted(
        ((v["recall"], k) for k, v in r["per_class"].items() if v["recall"] is not None)
    )[:3]
    print(
        f"tlbench evaluate: {r['model']['name']} ({r['strategy']}) on {r['data']}/{r['split']}, "
        f"{r['num_images']} images\n"
        f"  loss {r['loss']:.4f}  accuracy {100 * r['accuracy']:.1f}%  top-5 {top5}  "
        f"macro-F1 {100 * r['macro_f1']:.1f}%\n"
        f"  lowest recall: {', '.join(f'{k} {100 * v:.0f}%' for v, k in worst)}\n"
        f"  outputs: {r['output_dir']}  (evaluation.json, confusion_matrix.png)",
        flush=True,
    )
