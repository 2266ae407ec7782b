"""One-call GPU acceptance run: does tlbench work on this GPU, and how fast is the classic case?

Checks, each printed as PASS / FAIL / SKIP with its reason (tiny runs through tlbench's own
`train(cfg)` on synthetic CIFAR-10, random weights; bench/acceptance_checks.py and
bench/acceptance_runtime.py say what each one runs and requires):
  bf16          precision=auto picks bf16-mixed (Ampere or newer) and trains without a scaler
  fp16          16-mixed trains with Lightning's GradScaler, on images and on cached features
  syncs         host-device syncs per training step of the on-device input pipeline
                (torch.cuda.set_sync_debug_mode over 20 steps; classic and strong augmentation)
  feature_cache miss then hit, where the file lives, the features' device and dtype; a cache
                made on the CPU is recomputed on the GPU or reused at its own cost
  lp_ft         the switch: head only in epoch 0, the backbone trains from epoch 1
  deterministic two trainer.deterministic=true runs bit-identical; the all-layers VGG-like run
                falls back to deterministic=warn with a notice; cudnn.benchmark reported off
  inference     evaluate and predict with device=cuda agree with the run
  memory        no module alive after train() returns, nothing left allocated, each run's peak
  nccl          the collectives of tlbench's DDP reductions, on their dtypes, over NCCL
  ddp           a whole run under Lightning's DDP on one GPU (world-size-1 NCCL group)
  compile       compile=true through a short last batch and the lp_ft switch (run last, after
                the timed runs: inductor's compilations are the slowest part)
Then the timed seed-001 case (bench/gpu.py's runs: VGG16, 50,000 + 10,000 CIFAR-10-sized images
at 224 px, experiment=cifar10_vgg16, 3 epochs): transfer and scratch, with fit seconds, images/s,
GPU busy % during training steps, peak memory and TFLOP/s, against the targets on one H100/H200:
transfer <= 30 s, scratch <= 60 s end to end, GPU busy >= 80 % during training steps.

No check or timed run starts after `--budget` seconds (default 420; it is then SKIP), so the
call ends inside the device's 10-minute limit with its record written.
Everything goes to `--out` (default ./gpu_acceptance): gpu_acceptance.json, rewritten after each
check, so a run cut short still leaves what it found. Runs, checkpoints and caches go to a
scratch folder (`--work`, default a new temporary one): VGG16 checkpoints are 0.5 GB each.
Exit code: 0 all passed and every target met, 1 a check failed, 3 checks passed but a timing
target was missed, 2 no CUDA GPU (without --smoke).

On the lent GPU machine (the `device` tool, whose image lacks hydra-core, omegaconf and antlr4):
`make gpu-wheels` here first (fills the ignored wheels/), then one `run` with carry ["wheels"],
timeout_s 600:

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site wheels/*.whl && export PYTHONPATH=/tmp/site:$PWD && { python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . || echo 'editable install failed: tlbench runs from PYTHONPATH'; } && set -o pipefail && PYTHONUNBUFFERED=1 python3 bench/gpu_acceptance.py --out $OUT 2>&1 | tee $OUT/gpu_acceptance.log

`--smoke` runs every check on the CPU at toy size (tiny nets, 32 px, a few steps; the CUDA-only
parts report SKIP with the reason) and the timed part with LeNet-5: the test suite runs it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

import acceptance_checks as checks
import acceptance_runtime as runtime
import gpu as gpu_bench
import torch

CHECKS = {
    "bf16": checks.bf16,
    "fp16": checks.fp16,
    "syncs": checks.syncs,
    "feature_cache": checks.feature_cache,
    "lp_ft": checks.lp_ft,
    "deterministic": runtime.deterministic,
    "inference": runtime.inference,
    "memory": runtime.memory,
    "nccl": runtime.nccl,
    "ddp": runtime.ddp,
    "compile": runtime.compile_run,
}
# After the timed runs: the slowest check (inductor compiles), so a slow compiler cannot cost the
# timings their place inside the device's 10-minute call.
AFTER_TIMED = ("compile",)
TARGETS = {"vgg16_transfer": 30.0, "vgg16_scratch": 60.0}  # fit seconds, one H100/H200
BUSY_TARGET = 80.0  # GPU busy % during training steps
TIMED_SMOKE_IMAGES = (100, 20)  # train, test: --smoke times mini VGG on these


class Report:
    """The JSON record, rewritten whole after every result."""

    def __init__(self, path: Path, header: dict) -> None:
        self.path, self.started = path, time.perf_counter()
        self.doc = {**header, "checks": [], "timed": [], "targets": []}

    def add(self, section: str, item: dict) -> None:
        self.doc[section].append(item)
        self.write()

    def write(self) -> None:
        self.doc["elapsed_s"] = round(time.perf_counter() - self.started, 1)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.doc, indent=2, default=str) + "\n")
        tmp.replace(self.path)


def header(args) -> dict:
    import lightning
    import omegaconf

    cuda = torch.cuda.is_available() and not args.smoke
    return {
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "argv": sys.argv[1:],
        "device": torch.cuda.get_device_name() if cuda else f"CPU ({platform.machine()})",
        "capability": ".".join(map(str, torch.cuda.get_device_capability())) if cuda else None,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "lightning": lightning.__version__,
        "omegaconf": omegaconf.__version__,
        "python": platform.python_version(),
        "smoke": args.smoke,
    }


def run_check(name: str, ctx: checks.Context, report: Report, budget: float) -> None:
    """One check; a check that raises is a FAIL with its traceback (the others still run)."""
    start = time.perf_counter()
    try:
        if start - report.started > budget:  # ends inside the call's limit, with its record
            r = checks.result(checks.SKIP, f"not started: past the --budget of {budget:.0f} s")
        else:
            r = CHECKS[name](ctx)
    except Exception as exc:
        r = checks.result(
            checks.FAIL,
            f"the check raised {type(exc).__name__}: {str(exc)[:400]}",
            traceback=traceback.format_exc()[-3000:],
        )
    r = {"check": name, **r, "seconds": round(time.perf_counter() - start, 1)}
    print(f"{r['status']} {name}: {r['reason']} ({r['seconds']} s)", flush=True)
    report.add("checks", r)


def timed(args, work: Path, report: Report) -> None:
    """bench/gpu.py's VGG16 transfer and scratch runs, and the targets."""
    train_n, test_n = TIMED_SMOKE_IMAGES if args.smoke else (50_000, 10_000)
    root = gpu_bench.write_cifar(work / "cifar10_full", train_n, test_n)
    common = gpu_bench.common_overrides(root, args.smoke, args.epochs)
    if args.smoke:
        common += ["trainer.precision=32-true", "callbacks.images=null"]
    peak = gpu_bench.bf16_peak_tflops() if not args.smoke else None
    if peak:
        print(f"# {torch.cuda.get_device_name()}: bf16 matmul peak {peak:.0f} TFLOP/s", flush=True)
    report.doc["bf16_peak_tflops"] = round(peak, 1) if peak else None
    for name, target in TARGETS.items():
        if time.perf_counter() - report.started > args.budget:
            reason = f"not started: past the --budget of {args.budget:.0f} s"
            report.add("targets", {"target": name, "status": checks.SKIP, "reason": reason})
            continue
        overrides = gpu_bench.run_overrides(name, common, args.smoke)
        if args.smoke:  # the smallest net: the smoke checks the path, not the arithmetic
            overrides = [o.replace("model=mini_vgg", "model=lenet5") for o in overrides]
        start = time.perf_counter()
        try:
            row = gpu_bench.run_one(name, overrides, work / "timed", peak)
            row["call_s"] = round(time.perf_counter() - start, 1)  # train(): setup to summary
        except Exception as exc:  # its summary.json in --work holds the traceback
            row = {"run": name, "status": "failed", "error": f"{type(exc).__name__}: {exc}"}
            print(f"run={name} status=failed error={row['error'][:400]}", flush=True)
        report.add("timed", row)
        report.add("targets", target_result(name, row, target, args.smoke))


def target_result(name: str, row: dict, target: float, smoke: bool) -> dict:
    fit, busy = row.get("fit_s"), row.get("gpu_util_%")
    if smoke:
        status, reason = checks.SKIP, "the targets are for one H100/H200"
    elif row.get("status") != "ok":
        status, reason = checks.FAIL, f"the run ended {row.get('status')}"
    else:
        missed = []
        if fit is None or fit > target:
            missed.append(f"fit {fit} s > {target:.0f} s")
        if busy is None or busy < BUSY_TARGET:
            missed.append(f"GPU busy {busy} % < {BUSY_TARGET:.0f} %")
        status = checks.FAIL if missed else checks.PASS
        reason = "; ".join(missed) or f"fit {fit} s <= {target:.0f} s, GPU busy {busy} %"
    print(f"{status} target {name}: {reason}", flush=True)
    return {"target": name, "status": status, "reason": reason, "fit_s": fit, "gpu_busy": busy}


def exit_code(doc: dict) -> int:
    if any(c["status"] == checks.FAIL for c in doc["checks"]):
        return 1
    return 3 if any(t["status"] == checks.FAIL for t in doc["targets"]) else 0


def summary_lines(doc: dict) -> list[str]:
    lines = [f"# {doc['device']}, torch {doc['torch']}, {doc['elapsed_s']} s"]
    lines += [f"{c['status']:4}  {c['check']:14} {c['reason'][:200]}" for c in doc["checks"]]
    lines += [f"{t['status']:4}  target {t['target']}: {t['reason']}" for t in doc["targets"]]
    return lines


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="CPU, toy sizes (the test suite's run)")
    ap.add_argument("--only", nargs="+", choices=list(CHECKS), help="these checks only")
    ap.add_argument("--no-timed", action="store_true", help="skip the timed VGG16 runs")
    ap.add_argument("--epochs", type=int, default=3, help="epochs of the timed runs")
    ap.add_argument("--out", default="gpu_acceptance", help="folder for the JSON record")
    ap.add_argument("--work", default=None, help="scratch folder (default: a new temporary one)")
    ap.add_argument("--budget", type=float, default=420, help="seconds after which no check starts")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if not args.smoke and not torch.cuda.is_available():
        print(
            "bench/gpu_acceptance.py: no CUDA GPU here (torch.cuda.is_available() is False): it "
            "checks tlbench on a GPU. Run it on one (the command is in its docstring), or use "
            "--smoke to run every check on this CPU at toy size.",
            file=sys.stderr,
        )
        return 2
    for name in ("tlbench", "lightning.pytorch", "lightning.fabric"):  # the checks say it
        logging.getLogger(name).setLevel(logging.WARNING)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work or tempfile.mkdtemp(prefix="tlbench_acceptance_"))
    report = Report(out / "gpu_acceptance.json", header(args))
    ctx = checks.Context(work=work, data=work / "cifar10", smoke=args.smoke)
    gpu_bench.write_cifar(ctx.data, ctx.size["train"], ctx.size["test"])
    names = args.only or list(CHECKS)
    for name in [n for n in names if n not in AFTER_TIMED]:
        run_check(name, ctx, report, args.budget)
    if not args.no_timed and not args.only:
        timed(args, work, report)
    for name in [n for n in names if n in AFTER_TIMED]:
        run_check(name, ctx, report, args.budget)
    report.doc["exit_code"] = code = exit_code(report.doc)
    report.write()
    print("\n".join(summary_lines(report.doc)), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
