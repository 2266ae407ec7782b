"""Clean interruption: SIGINT, SIGTERM and SLURM's SIGUSR2 stop a run after the current step, save
`checkpoints/interrupted.ckpt`, mark `summary.json` as `interrupted` and exit with 128 + the
signal number (130 / 143 / 140); a signal that came when the work was complete (`BetweenRuns`)
leaves the run `ok` and exits 0. Feature extraction checks between its batches (`Trap.check`);
on SLURM the previous handler then requeues the job (`hand_over`).
Why (and what Lightning does on its own): docs/architecture.md, "SLURM, interruption and requeue".
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import threading
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException

from tlbench import cluster, summary_file

log = logging.getLogger("tlbench")

HANDLED = (signal.SIGINT, signal.SIGTERM)


def handled() -> tuple[int, ...]:
    """The signals a run traps: SIGINT, SIGTERM and, inside a SLURM job or when a handler (such
    as submitit's) waits for it, SIGUSR2, SLURM's "preempted / time limit near" signal."""
    preempt = cluster.PREEMPT_SIGNAL
    if cluster.job_id() is not None or callable(signal.getsignal(preempt)):
        return (*HANDLED, preempt)
    return HANDLED


def hand_over(exc: BaseException) -> None:
    """After a run stopped for SIGUSR2 and its summary is written: call the handler that was
    installed before the run (submitit's checkpoint-and-requeue under hydra/launcher=slurm;
    it requeues the job and exits). Nothing happens without one (an sbatch job requeued by
    SLURM's PreemptMode=REQUEUE needs no help)."""
    if not isinstance(exc, Interrupted) or exc.signum != cluster.PREEMPT_SIGNAL:
        return
    handler = signal.getsignal(exc.signum)
    if callable(handler):
        log.info("handing SIGUSR2 over to %s (requeue)", getattr(handler, "__qualname__", handler))
        handler(exc.signum, None)


class Interrupted(BaseException):
    """Raised at a step boundary after SIGINT/SIGTERM. A BaseException like KeyboardInterrupt, so
    no `except Exception` on the way swallows it."""

    def __init__(self, signum: int, where: str = "") -> None:
        self.signum = int(signum)
        self.where = where
        super().__init__(f"interrupted by {signal.Signals(self.signum).name}{where}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 SIGINT, 143 SIGTERM, 140 SIGUSR2


INTERRUPTS = (Interrupted, KeyboardInterrupt, SIGTERMException)


def exit_code(exc: BaseException) -> int:
    if isinstance(exc, Interrupted):
        return exc.exit_code
    if isinstance(exc, SIGTERMException):
        return 128 + signal.SIGTERM
    return 128 + signal.SIGINT


class Trap:
    """Records SIGINT/SIGTERM while a run is active; a second SIGINT raises immediately.

    One rule for when a signal lands: if the run's work completed (the signal came after its
    last step), the run is `ok` and the process exits 0; if it stopped the work, the run is
    `interrupted` and the process exits 130 / 143. Where no trainer runs (feature extraction),
    the code calls `check()` between batches."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, object] = {}

    def check(self, where: str = "") -> None:
        """Raise `Interrupted` if a signal was recorded."""
        if self.signum is not None:
            raise Interrupted(self.signum, where)

    def _handler(self, signum, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise Interrupted(signum, " (second Ctrl+C: stopped at once)")
        if self.signum is None:
            self.signum = signum
            log.warning(
                "%s received%s: stopping after the current step and saving a checkpoint "
                "(Ctrl+C again to stop at once)",
                signal.Signals(signum).name,
                PREEMPTED if signum == cluster.PREEMPT_SIGNAL else "",
            )

    def __enter__(self) -> Trap:
        if BETWEEN_RUNS.signum is not None:  # came after this process's previous run: stop now
            signum, BETWEEN_RUNS.signum = BETWEEN_RUNS.signum, None
            raise Interrupted(signum, " before the run started (after the previous run ended)")
        if threading.current_thread() is threading.main_thread():  # signals need the main thread
            for s in handled():
                self._old[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, exc_type, *exc) -> None:
        for s, old in self._old.items():
            with contextlib.suppress(Exception):
                signal.signal(s, old)
        self._old.clear()
        if exc_type is None and self.signum is not None:
            log.warning(
                "%s arrived after the run's last step: its work was complete, so it ends "
                "normally (status ok, exit 0)",
                signal.Signals(self.signum).name,
            )


class BetweenRuns:
    """The handler of a `python -m tlbench` process outside its runs (installed by
    training.job): a signal after a run completed -- while the summary is printed, a sweep's
    report written, Python shuts down -- no longer kills a finished process with 143. It is
    recorded: the next run of a sweep stops at once (Trap.__enter__, exit 130 / 143), and when no
    run is left the process ends normally (exit 0). A second signal acts at once."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def _handler(self, signum, frame) -> None:
        if self.signum is not None:  # asked twice: the default action, now
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.signum = signum
        log.warning(
            "%s received between runs: no run is stopped half-way; the next run of a sweep "
            "will not start (send it again to stop at once)",
            signal.Signals(signum).name,
        )

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for s in HANDLED:
                signal.signal(s, self._handler)


BETWEEN_RUNS = BetweenRuns()


PREEMPTED = " (SLURM: the job is preempted or near its time limit)"


class InterruptCallback(L.Callback):
    """Turns a recorded signal into a checkpoint plus `Interrupted` at the next step boundary.
    What the finished epochs measured is left in `findings` (empty until interrupted) for the
    run to put into its summary: the callback never writes the summary itself."""

    def __init__(self, trap: Trap, ckpt_dir: str | Path, table=None) -> None:
        self.trap, self.ckpt_dir, self.table = trap, Path(ckpt_dir), table
        self.findings: dict = {}

    def _check(self, trainer: L.Trainer) -> None:
        signum = self.trap.signum
        if signum is None and getattr(trainer, "received_sigterm", False):
            signum = signal.SIGTERM
        if signum is None:
            return
        where = f" at epoch {trainer.current_epoch}, step {trainer.global_step}"
        path = self.save(trainer)
        self.record(trainer, path)
        raise Interrupted(signum, where)

    def save(self, trainer: L.Trainer) -> Path | None:
        """`trainer.save_checkpoint` (public API; Lightning writes on global rank 0). It ends with
        a barrier, and under DDP the ranks may notice the signal at different steps, so there the
        interrupt checkpoint is skipped (a barrier could hang) and resume= uses last.ckpt."""
        path = self.ckpt_dir / "interrupted.ckpt"
        if trainer.world_size > 1:
            log.warning("DDP: no %s (resume= continues from last.ckpt)", path.name)
            return None
        try:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            trainer.save_checkpoint(path, weights_only=False)
            return path
        except Exception as exc:  # never let a failed save hide the interruption itself
            log.warning("could not save %s (%s: %s)", path, type(exc).__name__, exc)
            return None

    def record(self, trainer: L.Trainer, path: Path | None) -> None:
        rows = list(getattr(self.table, "rows", []) or [])
        self.findings = dict(
            epochs=len(rows),
            interrupted_at={"epoch": trainer.current_epoch, "step": trainer.global_step},
            interrupted_checkpoint=str(path) if path else None,
            **summary_file.val_accuracies(rows),
        )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._check(trainer)

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ):
        if not trainer.sanity_checking:
            self._check(trainer)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._check(trainer)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._check(trainer)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        """Lightning's own SIGTERM handling may raise SIGTERMException at a point where no batch
        hook of ours ran first (e.g. right after an epoch ended): save and record here then."""
        if isinstance(exception, SIGTERMException) and not self.findings:
            self.record(trainer, self.save(trainer))


def describe(exc: BaseException, run_dir: str | Path) -> str:
    """The summary's error text: what happened and how to continue."""
    signum = exit_code(exc) - 128
    name = signal.Signals(signum).name + (PREEMPTED if signum == cluster.PREEMPT_SIGNAL else "")
    where = getattr(exc, "where", "")
    hint = shlex.quote(f"resume={run_dir}")  # a dir with spaces survives copy and paste
    if not (Path(run_dir) / "checkpoints" / "last.ckpt").is_file():
        return (
            f"interrupted by {name}{where}, before its first epoch ended (no "
            f"checkpoints/last.ckpt yet); `python -m tlbench {hint}` starts it again from scratch"
        )
    requeue = (
        "a requeued SLURM job continues by itself, or continue"
        if signum == cluster.PREEMPT_SIGNAL
        else "continue"
    )
    return (
        f"interrupted by {name}{where}; {requeue} with `python -m tlbench {hint}` "
        "(from checkpoints/last.ckpt, the end of the last finished epoch)"
    )
