"""The one LightningModule: any backbone, a trainable-parameter plan, namespaced metrics.

It is built from plain dicts (model/strategy/optimizer/scheduler configs), never from nn.Modules,
so `save_hyperparameters()` stays small and `load_from_checkpoint` works with weights_only=True.
"""

from __future__ import annotations

import logging

import lightning as L
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torchmetrics import MaxMetric, Metric

from tlbench.config.instantiate import instantiate
from tlbench.models import outputs
from tlbench.models.registry import build
from tlbench.preprocess import Preprocess
from tlbench.training import head_steps, lr_groups, metrics, strategies
from tlbench.training.device import autocast, choose_channels_last
from tlbench.training.l2sp import L2SP

log = logging.getLogger(__name__)


class TransferModule(L.LightningModule):
    def __init__(
        self,
        model: dict,
        strategy: dict,
        num_classes: int,
        class_names: list[str],
        optimizer: dict | None,  # None: never fitted (the ranking reads features only)
        scheduler: dict | None = None,
        preprocess: dict | None = None,
        channels_last: bool | str = "auto",
        load_pretrained: bool = False,
    ) -> None:
        super().__init__()
        # Not saved: a reloaded checkpoint already holds its weights and must not fetch any.
        self.save_hyperparameters(ignore=["load_pretrained"])
        pretrained = bool(strategy.get("pretrained", True)) and load_pretrained
        built = build(
            OmegaConf.create(model),
            num_classes,
            pretrained=pretrained,
            image_size=(preprocess or {}).get("crop_size"),
            preprocess=Preprocess.from_dict(preprocess) if preprocess else None,
        )
        self.net = built.net
        self.head_names = built.head_names
        self.weights_origin = built.weights
        # Whether the network starts from pretrained weights (here or in the checkpoint it is
        # reloaded from): only then are there BN statistics for `bn_mode: frozen` to keep.
        self.pretrained_net = (
            bool(strategy.get("pretrained", True)) and model.get("weights") is not None
        )
        self.plan = strategies.plan(
            self.net, self.head_names, strategy, epoch=0, pretrained=self.pretrained_net
        )
        strategies.apply(self.net, self.plan)
        self._synced: frozenset[str] = frozenset()  # DDP: see setup()
        self._l2sp = L2SP.from_strategy(self.net, self.head_names, strategy, pretrained)
        self.inputs = "images"  # or "features": see use_cached_features()
        self.compiled: str | None = None  # what compile_network() wrapped: "net" | "head"
        self.channels_last = choose_channels_last(channels_last, self.net)
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)

        # The one definition of each metric (tlbench.training.metrics), shared with evaluate.
        self.train_acc = metrics.accuracy(num_classes, validate=False)  # no sync per step
        self.val_acc = metrics.accuracy(num_classes)
        self.test_acc = metrics.accuracy(num_classes)
        self.val_acc_best = MaxMetric()
        for stage in ("val", "test"):
            setattr(self, f"{stage}_top5", metrics.top5(num_classes))  # None with <= 5 classes
            setattr(self, f"{stage}_f1", metrics.macro_f1(num_classes))

    def l2sp_penalty(self) -> torch.Tensor:
        return self._l2sp.penalty(self.net, self.device, set(self.plan.trainable))

    # -- schedules ----------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        """DDP: every parameter of the freeze schedule requires grad before DDP wraps the module
        (right after this hook), so DDP syncs it (strategies.ddp_synced says why and how)."""
        if stage == "fit" and self.trainer.world_size > 1:
            cfg = self.hparams.strategy
            self._synced = strategies.ddp_synced(self.net, self.head_names, cfg)
            strategies.apply(self.net, self.plan, self._synced)

    def on_before_optimizer_step(self, optimizer) -> None:
        strategies.drop_waiting_grads(self.net, self.plan, self._synced)

    def on_train_epoch_start(self) -> None:
        """Freeze schedules (LP-FT, gradual unfreezing) are a function of the epoch alone, so a
        resumed run recomputes the same trainable set here."""
        if self.hparams.strategy.get("schedule"):
            self._follow_schedule()
        # Every epoch, not only at a switch: metrics.csv then says what trained in each epoch
        # that actually ran, which summary.json's `phases_run` is read from (resumes included).
        self.log("params/trainable", float(self.plan.counts(self.net)[0]))
        self._log_epoch_axis()

    def _log_epoch_axis(self) -> None:
        """Every scalar at x = epoch, in every mode (global_step counts slices in cached runs):
        a logged `step` is Lightning's way to set x, and then it adds no `epoch` chart. A test
        lands after the last epoch; a resume purges from the epoch it re-runs (runtime.resume)."""
        self.log("step", float(self.current_epoch), on_step=False, on_epoch=True)

    def _follow_schedule(self) -> None:
        new = strategies.plan(
            self.net,
            self.head_names,
            self.hparams.strategy,
            epoch=self.current_epoch,
            pretrained=self.pretrained_net,
        )
        if new.trainable != self.plan.trainable:
            self.plan = new
            strategies.apply(self.net, new, self._synced)
            self.train()  # re-enter train mode, re-pinning only what is still frozen
            trainable, total = new.counts(self.net)
            log.info(
                "epoch %d: %s / %s parameters trainable",
                self.current_epoch,
                f"{trainable:,}",
                f"{total:,}",
            )

    # -- modes -------------------------------------------------------------------------------
    def train(self, mode: bool = True):
        """Lightning calls .train() at every epoch start and after validation: re-pin frozen parts."""
        super().train(mode)
        if mode:
            strategies.pin_eval(self.net, self.plan)
        return self

    def use_cached_features(self, batch_size: int) -> None:
        """From now on batches hold the head's inputs (tlbench.training.feature_cache computed
        them once with this frozen backbone), so only the head runs. Call before fitting.
        A training batch is then a slice of many minibatches of `batch_size`, each with its own
        optimizer step (manual optimization, tlbench.training.head_steps): Lightning's per-step
        overhead (~13 ms measured on a CPU, far more than a linear head's arithmetic) is paid
        once per slice."""
        self.inputs, self.minibatch = "features", int(batch_size)
        self.automatic_optimization = False

    def compile_network(self) -> str:
        """torch.compile what runs each step -- the whole network, or only the head on cached
        features -- in place (`nn.Module.compile`: parameter names and checkpoints unchanged).
        Returns which part was compiled."""
        self.compiled = "head" if self.inputs == "features" else "net"
        part = self.net.get_submodule(self.head_names[0]) if self.compiled == "head" else self.net
        part.compile()
        return self.compiled

    def _run(self, x: torch.Tensor):
        """The network, or only its head when the batch holds cached head inputs."""
        if self.inputs == "features":
            return self.net.get_submodule(self.head_names[0])(x)
        return self._whole(x)

    def _whole(self, x: torch.Tensor):
        if self.channels_last and x.dim() == 4:  # a no-op when the data path already made it so
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Main logits only (evaluate, predict and the val/test steps come through here)."""
        return outputs.logits(self._run(x))

    def logits_in(self, x: torch.Tensor, precision: str) -> torch.Tensor:
        """Main logits under `precision`'s autocast (a Lightning precision string): the one
        forward outside the Trainer -- feature extraction, evaluate and predict. Always the whole
        network on images, also while training batches hold cached features (DDP extraction)."""
        with autocast(precision, x.device.type):
            return outputs.logits(self._whole(x))

    # -- steps -------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx: int):
        x, y = batch
        if self.inputs == "features":
            loss, logits = head_steps.slice_steps(self, self._loss, x, y, self.minibatch)
        else:
            loss, logits = self._loss(x, y)
        # update, not forward: the epoch value is all that is logged (forward also computes
        # each batch's). Nothing in this step reads a value back from the device: Lightning
        # reads the logged loss once per logging interval (tests/training/test_syncs.py).
        self.train_acc.update(logits, y)
        # Epoch means only (comparable with val/loss): curves share x = epoch (_log_epoch_axis),
        # where a step curve has no place. sync_dist: under DDP, averaged over ranks.
        epoch = {"on_step": False, "on_epoch": True, "batch_size": len(y)}
        self.log("train/loss", loss, sync_dist=True, **epoch)
        self.log("train/acc", self.train_acc, prog_bar=True, **epoch)
        return loss

    def on_train_epoch_end(self) -> None:
        """Manual optimization (cached features) steps the epoch scheduler itself."""
        if not self.automatic_optimization and (scheduler := self.lr_schedulers()) is not None:
            scheduler.step()

    def _loss(self, x: torch.Tensor, y: torch.Tensor):
        """(loss, logits) of one batch: cross-entropy, auxiliary heads, L2-SP."""
        loss, logits = outputs.loss(self._run(x), y)
        if self._l2sp is not None:
            penalty = self.l2sp_penalty()
            self.log(
                "train/l2sp",
                penalty,
                on_step=False,
                on_epoch=True,
                batch_size=len(y),
                sync_dist=True,
            )
            loss = loss + penalty
        return loss, logits

    def _eval_step(self, batch, stage: str, metric: Metric):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        metric(logits, y)
        self.log(
            f"{stage}/loss",
            loss,
            on_epoch=True,
            prog_bar=stage == "val",
            batch_size=len(y),
            sync_dist=True,
        )
        self.log(f"{stage}/acc", metric, on_epoch=True, prog_bar=True, batch_size=len(y))
        f1, top5 = getattr(self, f"{stage}_f1"), getattr(self, f"{stage}_top5")
        f1(logits, y)
        self.log(f"{stage}/f1_macro", f1, on_epoch=True, batch_size=len(y))
        if top5 is not None:
            top5(logits, y)
            self.log(f"{stage}/top5", top5, on_epoch=True, batch_size=len(y))
        # For callbacks (tlbench.training.callbacks.ImageSummaries): predictions without a second pass.
        return {"preds": logits.argmax(dim=-1)}

    def validation_step(self, batch, batch_idx: int):
        return self._eval_step(batch, "val", self.val_acc)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        self.val_acc_best(self.val_acc.compute())
        self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True)
        self._log_epoch_axis()

    def test_step(self, batch, batch_idx: int):
        return self._eval_step(batch, "test", self.test_acc)

    def on_test_epoch_end(self) -> None:
        self._log_epoch_axis()

    # -- optimisation ------------------------------------------------------------------------
    def param_groups(self) -> list[dict]:
        """Named groups over every parameter that trains at any epoch, each with its own LR
        (tlbench.training.lr_groups)."""
        base_lr = float(self.hparams.optimizer["lr"])
        return lr_groups.optimizer_groups(
            self.net, self.head_names, self.hparams.strategy, base_lr, l2sp=self._l2sp is not None
        )

    def _group_starts(self) -> dict[str, int]:
        if getattr(self, "_starts", None) is None:
            cfg = self.hparams.strategy
            groups = lr_groups.param_groups(self.net, self.head_names, cfg)
            self._starts = lr_groups.group_starts(self.net, self.head_names, cfg, groups)
        return self._starts

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None) -> None:
        """Each non-head group warms up from the epoch it starts training (lr_groups.warmup_factor):
        its scheduled LR is scaled for this step only, so the epoch scheduler never sees it."""
        warmup = float(self.hparams.strategy.get("warmup_epochs") or 0)
        groups = optimizer.param_groups
        saved = [g["lr"] for g in groups]
        if warmup > 0:
            starts = self._group_starts()
            batches = self.trainer.num_training_batches
            lr_groups.warm_up(groups, starts, epoch, batch_idx, batches, warmup)
        try:
            super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        finally:
            for g, lr in zip(groups, saved, strict=True):
                g["lr"] = lr

    def configure_optimizers(self):
        optimizer = instantiate(self.hparams.optimizer, "optimizer")(self.param_groups())
        if not self.hparams.scheduler:
            return optimizer
        scheduler = instantiate(self.hparams.scheduler, "scheduler")(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }
