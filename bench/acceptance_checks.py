"""The checks of bench/gpu_acceptance.py, each on tiny tlbench runs through `train(cfg)`.

A check returns `result(status, reason, **figures)`: PASS or FAIL with the reason, or SKIP where
it needs CUDA and there is none (`--smoke`): those still run whatever part a CPU can, so the
smoke test exercises their code. The data is synthetic CIFAR-10 in its own pickle format
(bench/gpu.py `write_cifar`), read by `data=cifar10`, whose uint8 batches are transformed on the
training device: the input pipeline the GPU runs use. Weights are random (`model.weights=null`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import gpu as gpu_bench
import torch
from acceptance_probes import Recorder, SyncCounter, finite

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
# Tiny on the GPU too: the checks are about what runs where, not speed (the timed runs are
# bench/gpu.py's). ~56 steps an epoch on the GPU; --smoke: ~7 steps of 16 images at 32 px.
SIZES = {
    "cuda": {"train": 2000, "test": 200, "batch": 32, "px": 64, "warmup": 3, "window": 20},
    "smoke": {"train": 120, "test": 20, "batch": 16, "px": 32, "warmup": 1, "window": 3},
}
MODEL = {"cuda": "mini_vgg", "smoke": "lenet5"}  # a VGG-like net; on the CPU the smallest
CACHED = ["strategy=transfer", "data.augment=none", "strategy.cache_features=true"]
LP_FT = ["strategy=lp_ft", "strategy.schedule=[{epoch:1,trainable:[all]}]", "trainer.max_epochs=2"]
LOG_EVERY = 10  # trainer.log_every_n_steps of the sync count: a logging step may sync


def result(status: str, reason: str, **data) -> dict:
    return {"status": status, "reason": reason, "data": data}


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


@dataclass
class Context:
    """Where a check's runs go and the overrides every check run shares."""

    work: Path
    data: Path  # the synthetic CIFAR-10 root
    smoke: bool
    runs: dict = field(default_factory=dict)  # run name -> run dir

    @property
    def cuda(self) -> bool:
        return not self.smoke and torch.cuda.is_available()

    @property
    def size(self) -> dict:
        return SIZES["smoke" if self.smoke else "cuda"]

    def overrides(self, *extra: str) -> list[str]:
        """Base overrides, then `extra` (a later value of the same key replaces the earlier)."""
        s = self.size
        base = [
            "data=cifar10",
            f"data.root={self.data}",
            f"model={MODEL['smoke' if self.smoke else 'cuda']}",
            "strategy=scratch",
            "model.weights=null",
            f"data.image_size={s['px']}",
            f"data.batch_size={s['batch']}",
            "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false",
            "trainer.num_sanity_val_steps=0",
            f"trainer.accelerator={'gpu' if self.cuda else 'cpu'}",
            "logger=none",
            "callbacks.images=null",  # PNG drawing is no part of any check
            "test_after_fit=false",
        ]
        if self.smoke:
            base.append("trainer.precision=32-true")  # no precision probe on the CPU
        return list({_key(o): o for o in [*base, *extra]}.values())

    def train(self, name: str, *extra: str, callbacks=(), cache: str | None = None):
        """One run through `tlbench.training.run.train`; its summary, also when it failed."""
        from tlbench.config import compose
        from tlbench.training.run import train

        run_dir, cache_dir = self.work / "runs" / name, self.work / "cache" / (cache or name)
        cfg = compose(
            [*self.overrides(*extra), f"paths.output_dir={run_dir}", f"paths.cache_dir={cache_dir}"]
        )
        self.runs[name] = run_dir
        with gpu_bench.watching(*callbacks):
            try:
                return train(cfg)
            except Exception as exc:  # train() wrote its summary first: read it back
                from tlbench import summary_file

                path = run_dir / summary_file.NAME
                failed = summary_file.RunSummary(status="failed")
                summary = summary_file.read(path) if path.is_file() else failed
                summary.error = summary.error or f"{type(exc).__name__}: {exc}"
                return summary


def not_ok(**summaries) -> dict | None:
    """FAIL naming the first run that did not end `ok`, else None."""
    for name, s in summaries.items():
        if s.status != "ok":
            error = str(s.error or "no error recorded").strip().splitlines()
            return result(FAIL, f"run {name} ended {s.status}: {error[0][:400]}")
    return None


def bf16(ctx: Context) -> dict:
    if not ctx.cuda:
        return result(SKIP, "CUDA only: what precision=auto picks on this GPU")
    major, minor = torch.cuda.get_device_capability()
    want = "bf16-mixed" if major >= 8 else "16-mixed"
    rec = Recorder()
    s = ctx.train("bf16_auto", "trainer.precision=auto", callbacks=[rec])
    if bad := not_ok(bf16_auto=s):
        return bad
    loss, got = s.final_train_loss, s.precision
    data = {"precision": got, "capability": f"{major}.{minor}", "scaler": rec.scaler, "loss": loss}
    if got != want:
        return result(FAIL, f"precision=auto chose {got} on capability {major}.{minor}", **data)
    if want == "bf16-mixed" and rec.scaler["grad_scaler"] is not None:
        return result(FAIL, "bf16-mixed runs with a gradient scaler (bf16 needs none)", **data)
    if not finite(loss):
        return result(FAIL, f"train loss {loss}", **data)
    return result(PASS, f"auto chose {got} (capability {major}.{minor}), loss {loss:.3f}", **data)


def fp16(ctx: Context) -> dict:
    if not ctx.cuda:
        return result(SKIP, "CUDA only: Lightning turns 16-mixed into bf16-mixed on a CPU")
    data = {}
    for label, extra in (("images", []), ("cached_head", CACHED)):
        rec = Recorder()
        s = ctx.train(f"fp16_{label}", "trainer.precision=16-mixed", *extra, callbacks=[rec])
        if bad := not_ok(**{f"fp16_{label}": s}):
            return bad
        scale, loss = rec.scaler["scale"], s.final_train_loss
        data[label] = {**rec.scaler, "loss": loss, "cached": s.cached_features}
        if rec.scaler["grad_scaler"] != "GradScaler" or not (finite(scale) and scale > 0):
            return result(FAIL, f"{label}: no working GradScaler ({rec.scaler})", **data)
        if not finite(loss) or s.precision != "16-mixed":
            return result(FAIL, f"{label}: loss {loss}, precision {s.precision}", **data)
        if label == "cached_head" and s.cached_features is not True:
            return result(FAIL, f"cached run trained uncached: {s.cache_reason}", **data)
    return result(PASS, "16-mixed trains with a GradScaler on images and cached features", **data)


def syncs(ctx: Context) -> dict:
    """Host-device syncs per training step of the on-device input pipeline (uncached, every
    layer trains), for both random augmentations."""
    size, data = ctx.size, {}
    allowed = math.ceil(size["window"] / LOG_EVERY)  # steps that log may read the loss
    for augment in ("classic", "strong"):
        counter = SyncCounter(size["warmup"], size["window"])
        s = ctx.train(
            f"syncs_{augment}",
            f"data.augment={augment}",
            f"trainer.log_every_n_steps={LOG_EVERY}",
            callbacks=[counter],
        )
        if bad := not_ok(**{f"syncs_{augment}": s}):
            return bad
        data[augment] = {
            "input_pipeline": s.input_pipeline,
            "syncs_per_step": counter.per_step,
            "steps_with_syncs": sum(1 for n in counter.per_step if n),
            "where": dict(counter.where.most_common(8)),
        }
    if not ctx.cuda:
        return result(SKIP, "CUDA only (torch.cuda.set_sync_debug_mode); runs ran on CPU", **data)
    reasons = []
    for augment, d in data.items():
        if len(d["syncs_per_step"]) < size["window"]:
            reasons.append(f"{augment}: counted {len(d['syncs_per_step'])} steps only")
        elif d["steps_with_syncs"] > allowed:
            reasons.append(
                f"{augment}: {d['steps_with_syncs']} of {size['window']} steps synced "
                f"(allowed {allowed}: logging steps), at {d['where']}"
            )
    if reasons:
        return result(FAIL, "; ".join(reasons), **data)
    return result(PASS, f"at most {allowed} of {size['window']} steps synced (logging)", **data)


def feature_cache(ctx: Context) -> dict:
    """Miss, then hit, on the training device; then a cache made on the CPU, as on a login
    node, is recomputed on the GPU or reused with its own (CPU) extraction time as the cost."""
    device = "cuda" if ctx.cuda else "cpu"
    precision = ["trainer.precision=bf16-mixed"] if ctx.cuda else []  # one key on both devices
    first, second = Recorder(), Recorder()
    s1 = ctx.train("cache_first", *CACHED, *precision, callbacks=[first], cache="shared")
    s2 = ctx.train("cache_second", *CACHED, *precision, callbacks=[second], cache="shared")
    if bad := not_ok(cache_first=s1, cache_second=s2):
        return bad
    path = Path(str(s1.feature_cache))
    data = {
        "hits": [s1.feature_cache_hit, s2.feature_cache_hit],
        "file": str(path),
        "file_mb": round(path.stat().st_size / 2**20, 2) if path.is_file() else None,
        "features": [first.features, second.features],
        "val_acc": [s1.final_val_acc, s2.final_val_acc],
        "extraction_s": s1.feature_extraction_seconds,
    }
    if data["hits"] != [False, True]:
        return result(FAIL, f"expected a miss then a hit, got hits {data['hits']}", **data)
    if not path.is_file() or (ctx.work / "cache" / "shared") not in path.parents:
        return result(FAIL, f"cache file {path} is not in the run's paths.cache_dir", **data)
    for f in (first.features, second.features):
        if not f or not f["device"].startswith(device) or "float" not in f["dtype"]:
            return result(FAIL, f"features trained from {f}, expected floats on {device}", **data)
    if ctx.cuda:
        cpu = ctx.train("cache_cpu", *CACHED, *precision, "trainer.accelerator=cpu", cache="cpu")
        gpu = ctx.train("cache_after_cpu", *CACHED, *precision, cache="cpu")
        if bad := not_ok(cache_cpu=cpu, cache_after_cpu=gpu):
            return bad
        cost = (cpu.feature_extraction_seconds, gpu.feature_extraction_seconds)
        data["cpu_made"] = {"gpu_hit": gpu.feature_cache_hit, "extraction_s": cost}
        if gpu.feature_cache_hit and cost[0] != cost[1]:
            return result(FAIL, f"a CPU-made cache reused at another cost: {cost}", **data)
    f = first.features
    return result(PASS, f"miss then hit; {f['dtype']} features on {f['device']}", **data)


def lp_ft(ctx: Context) -> dict:
    """The switch: epoch 0 trains the head only, epoch 1 the backbone too."""
    rec = Recorder()
    s = ctx.train("lp_ft", *LP_FT, callbacks=[rec])
    if bad := not_ok(lp_ft=s):
        return bad
    phases = s.trainable_params_by_phase or []
    data = {"epochs": rec.epochs, "phases": phases, "val_acc": s.final_val_acc}
    want = [
        {"backbone_trained": False, "head_trained": True},
        {"backbone_trained": True, "head_trained": True},
    ]
    if rec.epochs != want:
        return result(FAIL, f"which parameters changed per epoch: {rec.epochs}", **data)
    if len(phases) != 2 or not phases[1]["trainable"] > phases[0]["trainable"]:
        return result(FAIL, f"trainable parameters per phase: {phases}", **data)
    return result(PASS, "head only in epoch 0, everything from epoch 1", **data)
