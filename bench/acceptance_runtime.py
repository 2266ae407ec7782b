"""More checks of bench/gpu_acceptance.py: deterministic mode, evaluate/predict on the device,
memory after a run, the DDP reductions over NCCL, and `compile=true` (see acceptance_checks)."""

from __future__ import annotations

import csv
import logging
import os
import pickle

import torch
from acceptance_checks import FAIL, LP_FT, PASS, SKIP, Context, not_ok, result
from acceptance_probes import Recorder, replay_reductions

# Head-side layers only: nothing before the AdaptiveAvgPool2d trains, so every kernel has a
# deterministic version and two runs must agree bit for bit (classic augmentation included).
REPRODUCIBLE = [
    "strategy=transfer",
    "strategy.cache_features=false",
    "data.augment=classic",
    "strategy.trainable=[classifier]",
    "trainer.deterministic=true",
]


def deterministic(ctx: Context) -> dict:
    a, b = Recorder(), Recorder()
    sa = ctx.train("deterministic_a", *REPRODUCIBLE, callbacks=[a])
    sb = ctx.train("deterministic_b", *REPRODUCIBLE, callbacks=[b])
    # every layer trains: AdaptiveAvgPool2d((4, 4)) has no deterministic CUDA backward
    sc = ctx.train("deterministic_all_layers", "trainer.deterministic=true")
    if bad := not_ok(deterministic_a=sa, deterministic_b=sb, deterministic_all_layers=sc):
        return bad
    warned = [w for w in sc.warnings or [] if "deterministic" in w]
    data = {
        "weights": [a.weights, b.weights],
        "loss": [sa.final_train_loss, sb.final_train_loss],
        "cudnn_benchmark": sa.cudnn_benchmark,
        "all_layers_warning": warned[:1],
    }
    if a.weights != b.weights or data["loss"][0] != data["loss"][1]:
        return result(FAIL, f"two deterministic runs differ: {data}", **data)
    if ctx.cuda and not warned:
        return result(FAIL, "all-layers run on CUDA gave no deterministic=warn notice", **data)
    if ctx.cuda and sa.cudnn_benchmark is not False:
        return result(FAIL, f"summary says cudnn_benchmark={sa.cudnn_benchmark}", **data)
    fallback = "; all-layers run fell back to warn with a notice" if ctx.cuda else ""
    return result(PASS, f"two deterministic runs bit-identical{fallback}", **data)


def _write_pngs(root, folder, count: int) -> list:
    """The first `count` test images of the synthetic CIFAR-10 as PNG files."""
    from PIL import Image

    with open(root / "cifar-10-batches-py" / "test_batch", "rb") as f:
        rows = pickle.load(f, encoding="latin1")["data"][:count]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, row in enumerate(rows):
        paths.append(folder / f"img{i}.png")
        Image.fromarray(row.reshape(3, 32, 32).transpose(1, 2, 0)).save(paths[-1])
    return paths


def inference(ctx: Context) -> dict:
    """evaluate and predict with `device=cuda`: evaluate's val accuracy is the run's own."""
    from tlbench.config import compose
    from tlbench.inference.evaluate import evaluate
    from tlbench.inference.predict import predict

    s = ctx.train("for_inference", "model=lenet5", "data.image_size=32")
    if bad := not_ok(for_inference=s):
        return bad
    run, device = ctx.runs["for_inference"], "cuda" if ctx.cuda else "cpu"
    common = [f"ckpt={run}", f"device={device}", f"precision={s.precision}"]
    r = evaluate(
        compose(
            [*common, "data=cifar10", f"data.root={ctx.data}", "split=val"]
            + [f"paths.output_dir={ctx.work / 'evaluate'}"],
            config_name="evaluate",
        )
    )
    files = _write_pngs(ctx.data, ctx.work / "images", 8)
    (ctx.work / "predict").mkdir(parents=True, exist_ok=True)  # Hydra would have made it
    if ctx.cuda:
        torch.cuda.reset_peak_memory_stats()
    out = predict(
        compose(
            [*common, f"input={files[0].parent}", "progress_bar=false", "num_workers=0"]
            + [f"paths.output_dir={ctx.work / 'predict'}"],
            config_name="predict",
        )
    )
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    val = (s.split_sizes or {}).get("val") or 1
    data = {
        "evaluate_device": r.get("device"),
        "evaluate_val_acc": r.get("accuracy"),
        "run_best_val_acc": s.best_val_acc,
        "predicted_rows": len(rows),
        "predict_cuda_peak_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1)
        if ctx.cuda
        else None,
    }
    if not str(r.get("device")).startswith(device):
        return result(FAIL, f"evaluate ran on {r.get('device')}, asked {device}", **data)
    if abs(r["accuracy"] - s.best_val_acc) > max(0.02, 1.5 / val):
        return result(FAIL, "evaluate's val accuracy is not the run's", **data)
    errors = [row for row in rows if any(v for k, v in row.items() if "error" in k.lower())]
    if len(rows) != len(files) or errors:
        return result(FAIL, f"predict wrote {len(rows)} rows, {len(errors)} with errors", **data)
    if ctx.cuda and not data["predict_cuda_peak_mb"]:
        return result(FAIL, "predict allocated nothing on the GPU", **data)
    return result(PASS, f"evaluate and predict on {device} agree with the run", **data)


def memory(ctx: Context) -> dict:
    """No module alive once train() returns, nothing left allocated, each run's own peak."""
    cuda, size = ctx.cuda, ctx.size
    if cuda:
        torch.cuda.synchronize()
    before = torch.cuda.memory_allocated() if cuda else 0
    big, small = Recorder(), Recorder()
    big_run = [f"data.image_size={2 * size['px']}", f"data.batch_size={2 * size['batch']}"]
    sa = ctx.train("memory_big", *big_run, callbacks=[big])
    alive = [big.module_alive]  # read before anything of ours collects garbage
    sb = ctx.train("memory_small", "model=lenet5", "data.image_size=32", callbacks=[small])
    alive.append(small.module_alive)
    if bad := not_ok(memory_big=sa, memory_small=sb):
        return bad
    leftover = (torch.cuda.memory_allocated() - before) / 2**20 if cuda else None
    peaks = [sa.cuda_max_allocated_mb, sb.cuda_max_allocated_mb]
    data = {"module_alive_after_run": alive, "leftover_mb": leftover, "peak_mb": peaks}
    if any(alive):
        return result(FAIL, f"a module outlived train() (alive: {alive})", **data)
    if not cuda:
        return result(SKIP, "CUDA only for memory; modules freed after train() on CPU", **data)
    if leftover > 8:
        return result(FAIL, f"{leftover:.1f} MiB still allocated after the runs", **data)
    if not (peaks[0] and peaks[1] and peaks[1] < peaks[0]):
        return result(FAIL, f"the small run's peak is not its own: {peaks}", **data)
    return result(PASS, f"freed; {leftover:.1f} MiB left; peaks {peaks} MiB", **data)


def nccl(ctx: Context) -> dict:
    """The collectives tlbench's DDP reductions make, on their dtypes, in a world-size-1 NCCL
    group (one GPU); on a CPU the same calls over gloo exercise the check itself."""
    if not ctx.cuda:
        calls = replay_reductions("gloo", torch.device("cpu"))
        return result(SKIP, "CUDA only (NCCL); the same calls ran over gloo", calls=calls)
    calls = replay_reductions("nccl", torch.device("cuda", torch.cuda.current_device()))
    failed = {k: v for k, v in calls.items() if v != "ok"}
    if failed:
        return result(FAIL, f"NCCL refused {failed}", calls=calls)
    return result(PASS, f"{len(calls)} collectives accepted", calls=calls)


def ddp(ctx: Context) -> dict:
    """A whole run under Lightning's DDP on one GPU: its sync_dist, torchmetrics and gradient
    reductions go through a world-size-1 NCCL group."""
    if not ctx.cuda:
        return result(SKIP, "CUDA only (DDP over gloo is in tests/training)")
    environ = dict(os.environ)  # Lightning's DDP exports MASTER_PORT, WORLD_SIZE, ...
    try:
        s = ctx.train("ddp_nccl", "model=lenet5", "data.image_size=32", "+trainer.strategy=ddp")
    finally:  # ... which later runs in this process must not see
        os.environ.clear()
        os.environ.update(environ)
    if bad := not_ok(ddp_nccl=s):
        return bad
    return result(PASS, f"DDP run ok, val acc {s.final_val_acc}", loss=s.final_train_loss)


class _Lines(logging.Handler):
    """The messages of a logger, kept."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record) -> None:
        self.lines.append(record.getMessage())


def compile_run(ctx: Context) -> dict:
    """compile=true through a short last batch and the lp_ft switch; graphs compiled, and
    whether a function hit dynamo's recompile limit (it then runs uncompiled: a log warning)."""
    if not ctx.cuda:
        return result(SKIP, "CUDA check (compile on a CPU is in tests/training; minutes here)")
    from torch._dynamo.utils import counters

    before = counters["stats"]["unique_graphs"]
    dynamo, lines, rec = logging.getLogger("torch._dynamo"), _Lines(), Recorder()
    dynamo.addHandler(lines)
    try:
        s = ctx.train(
            "compile", "compile=true", "model=lenet5", "data.image_size=32", *LP_FT, callbacks=[rec]
        )
    finally:
        dynamo.removeHandler(lines)
    if bad := not_ok(compile=s):
        return bad
    graphs = counters["stats"]["unique_graphs"] - before
    limit = [line for line in lines.lines if "_limit" in line]  # "hit config.recompile_limit"
    data = {
        "compiled": s.compiled,
        "graphs": graphs,
        "dynamo_warnings": lines.lines[:5],
        "fit_s": s.fit_seconds,
        "module_alive_after_run": rec.module_alive,
        "epochs": rec.epochs,
    }
    if s.compiled != "net" or limit:
        return result(FAIL, f"compiled={s.compiled}; {limit[:1]}", **data)
    if [e["backbone_trained"] for e in rec.epochs] != [False, True]:
        return result(FAIL, f"the lp_ft switch under compile: {rec.epochs}", **data)
    return result(PASS, f"{graphs} graphs, no recompile limit hit, fit {data['fit_s']} s", **data)
