"""Whether Lightning logs step metrics at this training step: the one moment per logging
interval when the host may read values from the device (docs/architecture.md, "The step path")."""

from __future__ import annotations


def logs_this_step(trainer) -> bool:
    """True at the steps where Lightning writes step metrics to the loggers (every
    `trainer.log_every_n_steps`), and so reads the logged loss from the device anyway: a value
    read then costs no extra wait. Lightning's own LearningRateMonitor asks the same private
    property; valid from `on_train_batch_start` to `on_train_batch_end`."""
    return bool(trainer._logger_connector.should_update_logs)
