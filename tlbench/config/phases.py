"""A freeze schedule (lp_ft, gradual: `strategy.schedule`) must fit in the run: a switch at or past
`trainer.max_epochs` never happens, and the run would be reported under the strategy's name while
it trained only its earlier phase (`strategy=lp_ft trainer.max_epochs=3` would stay a linear
probe, with no warning). Refused with the config's other values, before any data is read: for
every job of a sweep (training's `validate`) and for the config a `resume=<dir>
trainer.max_epochs=N` composes.
"""

from __future__ import annotations

from omegaconf import DictConfig

from tlbench.errors import TlbenchError


def switches(strategy) -> list[tuple[int, int]]:
    """(index in strategy.schedule, epoch) of every entry with an integer epoch, by epoch. Other
    epochs are refused where the schedule is read (tlbench.training.strategies)."""
    out = []
    for i, entry in enumerate(strategy.get("schedule") or []):
        epoch = entry.get("epoch") if hasattr(entry, "get") else None
        if isinstance(epoch, int) and not isinstance(epoch, bool):
            out.append((i, epoch))
    return sorted(out, key=lambda ie: ie[1])


def check_schedule_fits(cfg: DictConfig) -> None:
    """Every schedule switch happens before the last epoch ends (epochs count from 0)."""
    strategy, trainer = cfg.get("strategy"), cfg.get("trainer")
    if not isinstance(strategy, DictConfig) or not isinstance(trainer, DictConfig):
        return
    if trainer.get("fast_dev_run"):  # a smoke test of one batch: never meant to reach a switch
        return
    max_epochs = trainer.get("max_epochs")
    if isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 1:
        return  # refused by tlbench.config.values.check_trainer
    late = [(i, e) for i, e in switches(strategy) if e >= max_epochs]
    if not late:
        return
    i, epoch = late[0]
    last = max(e for _, e in late)
    name = strategy.get("name") or "this strategy"
    raise TlbenchError(
        f"strategy={name} switches at epoch {epoch} (strategy.schedule[{i}].epoch; epochs count "
        f"from 0), but trainer.max_epochs={max_epochs} ends the run before that, so "
        + ("those phases" if len(late) > 1 else "that phase")
        + f" would never train and the run would be reported as {name} while it trained only "
        "its earlier phase",
        key="trainer.max_epochs",
        value=max_epochs,
        allowed=f"an integer > {last} for this strategy.schedule (every switch before the end)",
        fix=f"train longer (trainer.max_epochs={last + 1} at least, more to give the last phase "
        "room), move the switch earlier (e.g. "
        f"'strategy.schedule=[{{epoch: {max_epochs // 2}, trainable: [all]}}]', quoted in a "
        "shell), or use strategy=transfer to train the head alone",
    )
