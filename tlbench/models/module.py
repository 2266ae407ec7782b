"""The one LightningModule: any backbone, a trainable-parameter plan, namespaced metrics.

It is built from plain dicts (model/strategy/optimizer/scheduler configs), never from nn.Modules,
so `save_hyperparameters()` stays small and `load_from_checkpoint` works with weights_only=True.
"""

from __future__ import annotations

import warnings

import lightning as L
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torchmetrics import MaxMetric
from torchmetrics.classification import MulticlassAccuracy

from tlbench import strategies
from tlbench.device import choose_channels_last
from tlbench.instantiate import instantiate
from tlbench.models.build import build

# Frozen parts are in eval mode on purpose (see tlbench.strategies); the datamodule-vs-module hook
# notice is about a hook we deliberately own here.
warnings.filterwarnings(
    "ignore", message=r"Found \d+ module\(s\) in eval mode at the start of training"
)
warnings.filterwarnings("ignore", message=r"You have overridden `on_after_batch_transfer`")

AUX_LOSS_WEIGHT = 0.3  # GoogLeNet paper's weight for auxiliary classifier losses


class TransferModule(L.LightningModule):
    def __init__(
        self,
        model: dict,
        strategy: dict,
        num_classes: int,
        class_names: list[str],
        optimizer: dict,
        scheduler: dict | None = None,
        preprocess: dict | None = None,
        channels_last: bool | str = "auto",
        load_pretrained: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        pretrained = bool(strategy.get("pretrained", True)) and load_pretrained
        built = build(OmegaConf.create(model), num_classes, pretrained=pretrained)
        self.net = built.net
        self.head_names = built.head_names
        self.weights_origin = built.weights
        self.plan = strategies.plan(self.net, self.head_names, strategy)
        strategies.apply(self.net, self.plan)
        self.channels_last = choose_channels_last(channels_last, self.net)
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)

        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc_best = MaxMetric()

    # -- modes -------------------------------------------------------------------------------
    def train(self, mode: bool = True):
        """Lightning calls .train() at every epoch start and after validation: re-pin frozen parts."""
        super().train(mode)
        if mode:
            strategies.pin_eval(self.net, self.plan)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out[0] if isinstance(out, tuple) else out

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        x, y = batch
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y

    # -- steps -------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx: int):
        x, y = batch
        out = self.net(x)
        if isinstance(out, tuple):  # inception_v3 / googlenet in train mode: (logits, aux...)
            logits, aux = out[0], [a for a in out[1:] if a is not None]
        else:
            logits, aux = out, []
        loss = F.cross_entropy(logits, y)
        if aux:
            loss = loss + AUX_LOSS_WEIGHT * sum(F.cross_entropy(a, y) for a in aux)
        self.train_acc(logits, y)
        # `train/loss` is the epoch mean (comparable with val/loss); `train/loss_step` the raw curve.
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
        self.log("train/loss_step", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=len(y))
        self.log(
            "train/acc",
            self.train_acc,
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=len(y),
        )
        return loss

    def _eval_step(self, batch, stage: str, metric: MulticlassAccuracy):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        metric(logits, y)
        self.log(f"{stage}/loss", loss, on_epoch=True, prog_bar=stage == "val", batch_size=len(y))
        self.log(f"{stage}/acc", metric, on_epoch=True, prog_bar=True, batch_size=len(y))

    def validation_step(self, batch, batch_idx: int):
        self._eval_step(batch, "val", self.val_acc)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        self.val_acc_best(self.val_acc.compute())
        self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True)

    def test_step(self, batch, batch_idx: int):
        self._eval_step(batch, "test", self.test_acc)

    def predict_step(self, batch, batch_idx: int):
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        return torch.softmax(self(x).float(), dim=-1)

    # -- optimisation ------------------------------------------------------------------------
    def param_groups(self) -> list[dict]:
        """Named groups built from trainable parameters only, each with its own LR."""
        base_lr = float(self.hparams.optimizer["lr"])
        params = dict(self.net.named_parameters())
        return [
            {
                "name": group,
                "params": [params[n] for n in names],
                "lr": base_lr * self.plan.lr_mults[group],
            }
            for group, names in self.plan.groups.items()
        ]

    def configure_optimizers(self):
        optimizer = instantiate(self.hparams.optimizer, "optimizer")(self.param_groups())
        if not self.hparams.scheduler:
            return optimizer
        scheduler = instantiate(self.hparams.scheduler, "scheduler")(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }
