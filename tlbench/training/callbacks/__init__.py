"""Lightning callbacks, one file each. `training.run` always attaches the epoch clock, the
metrics table, the non-finite-loss guard and the interrupt handler; the others are composed from
conf/callbacks/default.yaml by name."""

from tlbench.training.callbacks.epoch_clock import EpochClock
from tlbench.training.callbacks.epoch_table import EpochTable
from tlbench.training.callbacks.image_summaries import ImageSummaries
from tlbench.training.callbacks.last_checkpoint import LastCheckpoint
from tlbench.training.callbacks.learning_rates import LearningRates
from tlbench.training.callbacks.nonfinite import NonFiniteLoss
from tlbench.training.callbacks.param_digest import ParamDigest

__all__ = [
    "EpochClock",
    "EpochTable",
    "ImageSummaries",
    "LastCheckpoint",
    "LearningRates",
    "NonFiniteLoss",
    "ParamDigest",
]
