"""TensorBoard images, confusion matrix and prediction PNGs (conf/callbacks/default.yaml)."""

from __future__ import annotations

import logging
import math
import re
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from tlbench.errors import TlbenchError

log = logging.getLogger("tlbench")


def _looks_like_images(x) -> bool:
    """Cached-feature batches (N, D) have no pictures to show."""
    return isinstance(x, torch.Tensor) and x.dim() == 4 and x.shape[1] in (1, 3)


def _scalar_name(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", str(name)).strip("_") or "class"


class ImageSummaries(L.Callback):
    """Image summaries for TensorBoard and the final model's PNGs in the run dir.

    - `train/inputs`: a grid of augmented training inputs (denormalised, labelled), once per run
      (a run on cached features shows the training images the features were computed from);
    - `val/confusion_matrix`, `val/per_class_acc`, `val/predictions` every `every_n_epochs`
      (0 = never) and on the last epoch; `val/acc_class/<name>` scalars every epoch while the
      classes are at most `class_scalars_up_to`;
    - `test/confusion_matrix`, `test/per_class_acc`, `test/predictions` after testing, also
      written as `confusion_matrix.png` and `predictions.png` into `out_dir`. A run without a test
      (`test_follows=false`) writes the PNGs from its last validation epoch at the end of fit.

    Predictions come from the module's validation/test steps (they return `{"preds": ...}`), so
    nothing is computed twice. Figures are drawn after the training part of an epoch, so they
    never count in `train/images_per_sec` (they do in the run's `fit_seconds`).
    """

    def __init__(
        self,
        out_dir: str | Path | None = None,
        every_n_epochs: int = 1,
        max_images: int = 16,
        class_scalars_up_to: int = 20,
        inputs_grid: bool = True,
        test_follows: bool = False,
    ) -> None:
        for key, value in (("every_n_epochs", every_n_epochs), ("max_images", max_images)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise TlbenchError(
                    "this must be a count",
                    key=f"callbacks.images.{key}",
                    value=value,
                    allowed="an integer >= 0 (0 turns it off)",
                    fix=f"e.g. callbacks.images.{key}={1 if key == 'every_n_epochs' else 16}",
                )
        self.out_dir = Path(out_dir) if out_dir else None
        self.every_n_epochs, self.max_images = every_n_epochs, max_images
        self.class_scalars_up_to, self.inputs_grid = class_scalars_up_to, inputs_grid
        self.test_follows = test_follows  # then the final PNGs come from the test, not fit end
        self.seconds = 0.0  # time spent drawing, reported by tests and benchmarks
        self.written: dict[str, Path] = {}  # PNG name -> path
        self._inputs: tuple | None = None  # (images, targets) captured, drawn later
        self._inputs_done = False
        self._last_val: tuple | None = None  # (confusion counts, grid, epoch)
        self._warned = False
        self._reset()
        from tlbench.training import visuals  # noqa: F401 (matplotlib loads now, not in fit)

    def _reset(self) -> None:
        self._preds: list[torch.Tensor] = []
        self._targets: list[torch.Tensor] = []
        self._grid: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._grid_n = 0

    # -- collection --------------------------------------------------------------------------
    def _collect(self, trainer, split: str, outputs, batch) -> None:
        preds = outputs.get("preds") if isinstance(outputs, dict) else None
        if preds is None:
            if not self._warned:
                self._warned = True
                log.warning("ImageSummaries: the eval step returns no 'preds'; no images drawn")
            return
        x, y = batch[0], batch[1]
        self._preds.append(preds.detach().cpu())
        self._targets.append(y.detach().cpu())
        need = self.max_images - self._grid_n
        if need > 0:
            images = (
                x[:need].detach().cpu()
                if _looks_like_images(x)
                else self._images_of(trainer, split, self._grid_n, y[:need].cpu())
            )
            if images is not None:
                self._grid.append((images, y[:need].cpu(), preds[:need].cpu()))
                self._grid_n += len(images)
            else:
                self._grid_n = self.max_images  # nothing to show this epoch

    @staticmethod
    def _images_of(trainer, split: str, start: int, targets: torch.Tensor):
        """Cached-feature batches carry no pixels; the cache's `pixels` is the image DataModule
        (tlbench.training.cached_features.CachedFeatures) and the eval loaders are not shuffled,
        so the images are the split's items from `start` on (checked against the labels)."""
        pixels = getattr(trainer.datamodule, "pixels", None)
        if pixels is None:
            return None
        dataset = pixels.dataset
        try:
            ds = dataset(split, train=False)
            items = [ds[start + i] for i in range(len(targets))]
        except (KeyError, IndexError, TypeError):
            return None
        if [int(t) for _, t in items] != targets.tolist():
            return None
        return torch.stack([img for img, _ in items])

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._reset()

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        if not trainer.sanity_checking:
            self._collect(trainer, "val", outputs, batch)

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self._reset()

    def on_test_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self._collect(trainer, "test", outputs, batch)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        # Only a copy here; drawing waits until the timed training part is over.
        if self.inputs_grid and self.max_images and not self._inputs_done and self._inputs is None:
            x, y = batch[0], batch[1]
            if _looks_like_images(x):
                self._inputs = (x[: self.max_images].detach().cpu(), y[: self.max_images].cpu())
            else:  # cached head inputs: the grid shows the pixels they were computed from
                self._inputs = self._training_pixels(trainer)
                self._inputs_done = self._inputs is None

    def _training_pixels(self, trainer) -> tuple | None:
        """The first training images of the cache's image DataModule (eval transform, in order:
        the cache is made only without augmentation). The global RNG is left as it was, so the
        grid never changes what the run trains on."""
        pixels = getattr(trainer.datamodule, "pixels", None)
        if pixels is None or not hasattr(pixels, "batches"):
            return None
        with torch.random.fork_rng(devices=[]):
            x, y = next(iter(pixels.batches("train", train=False, batch_size=self.max_images)))
        return x.detach().cpu(), y.cpu()

    # -- drawing -----------------------------------------------------------------------------
    def _due(self, trainer) -> bool:
        epoch = trainer.current_epoch + 1
        last = (trainer.max_epochs or 0) > 0 and epoch >= trainer.max_epochs  # -1 = no limit
        return self.every_n_epochs > 0 and (epoch % self.every_n_epochs == 0 or last)

    @staticmethod
    def _mean_std(trainer, pl_module):
        pre = getattr(trainer.datamodule, "preprocess", None) if trainer.datamodule else None
        if pre is not None:
            return pre.mean, pre.std
        pre = (pl_module.hparams.get("preprocess") or {}) if hasattr(pl_module, "hparams") else {}
        return pre.get("mean", (0.0,)), pre.get("std", (1.0,))

    @staticmethod
    def _writers(trainer) -> list:
        return [lg.experiment for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]

    def _publish(self, trainer, tag: str | None, fig, png: str | None = None) -> None:
        """To TensorBoard under `tag` (None: not) and as `png` in the run dir (None: not)."""
        from tlbench.training import visuals

        writers = self._writers(trainer) if tag else []
        if writers:
            image = visuals.to_array(fig)
            for w in writers:
                w.add_image(tag, image, trainer.current_epoch, dataformats="HWC")  # x = epoch
        if png and self.out_dir is not None and trainer.is_global_zero:
            self.written[png] = visuals.save_png(fig, self.out_dir / png)

    @staticmethod
    def _class_names(pl_module) -> list[str]:
        names = pl_module.hparams.get("class_names")
        return (
            [str(n) for n in names]
            if names
            else [str(i) for i in range(pl_module.hparams.num_classes)]
        )

    def _draw_inputs(self, trainer, pl_module) -> None:
        if self._inputs is None or self._inputs_done:
            return
        if not self._writers(trainer):  # TensorBoard only
            self._inputs, self._inputs_done = None, True
            return
        from tlbench.training import visuals

        start = time.perf_counter()
        x, y = self._inputs
        mean, std = self._mean_std(trainer, pl_module)
        names = self._class_names(pl_module)
        augment = getattr(trainer.datamodule, "augment", None)
        title = f"training inputs (augment={augment})" if augment else "training inputs"
        fig = visuals.grid_figure(visuals.denormalise(x, mean, std), y, names, title)
        self._publish(trainer, "train/inputs", fig)
        self._inputs, self._inputs_done = None, True
        self.seconds += time.perf_counter() - start

    def _draw_split(self, trainer, pl_module, stage, cm, grid, title, tensorboard=True, png=False):
        """Confusion matrix, per-class accuracy and prediction grid of one split."""
        from tlbench.training import visuals

        tensorboard = tensorboard and bool(self._writers(trainer))
        if not (tensorboard or (png and self.out_dir is not None)):
            return  # nowhere to show it: draw nothing
        start = time.perf_counter()
        names = self._class_names(pl_module)
        tag = (lambda name: f"{stage}/{name}") if tensorboard else (lambda name: None)
        fig = visuals.confusion_figure(cm, names, f"{title}: confusion matrix")
        self._publish(
            trainer, tag("confusion_matrix"), fig, "confusion_matrix.png" if png else None
        )
        if tensorboard:
            acc = visuals.per_class_accuracy(cm)
            fig = visuals.per_class_figure(acc, names, f"{title}: accuracy per class")
            self._publish(trainer, tag("per_class_acc"), fig)
        if grid is not None:
            x, y, p = grid
            mean, std = self._mean_std(trainer, pl_module)
            images = visuals.denormalise(x, mean, std)
            fig = visuals.grid_figure(images, y, names, f"{title}: red = wrong (pred / true)", p)
            self._publish(trainer, tag("predictions"), fig, "predictions.png" if png else None)
        self.seconds += time.perf_counter() - start

    def _gathered(self, pl_module):
        from tlbench.training import visuals

        if not self._preds:
            return None, None
        cm = visuals.confusion_counts(
            torch.cat(self._preds), torch.cat(self._targets), pl_module.hparams.num_classes
        )
        if pl_module.trainer.world_size > 1:  # DDP: each rank saw part of the split
            # as a tensor on the rank's device: Lightning returns anything else unreduced
            counts = torch.as_tensor(cm, device=pl_module.device)
            cm = pl_module.trainer.strategy.reduce(counts, reduce_op="sum").cpu().numpy()
        grid = None
        if self._grid:
            grid = tuple(
                torch.cat(parts)[: self.max_images] for parts in zip(*self._grid, strict=True)
            )
        return cm, grid

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        self._draw_inputs(trainer, pl_module)
        cm, grid = self._gathered(pl_module)
        if cm is None:
            return
        from tlbench.training import visuals

        names = self._class_names(pl_module)
        if len(names) <= self.class_scalars_up_to:
            for name, acc in zip(names, visuals.per_class_accuracy(cm), strict=True):
                if math.isfinite(acc):
                    pl_module.log(f"val/acc_class/{_scalar_name(name)}", float(acc))
        self._last_val = (cm, grid, trainer.current_epoch)
        if self._due(trainer):
            title = f"val, epoch {trainer.current_epoch}"
            self._draw_split(trainer, pl_module, "val", cm, grid, title)

    def on_fit_end(self, trainer, pl_module) -> None:
        """PNGs from the last validation epoch when no test follows."""
        self._draw_inputs(trainer, pl_module)
        if self._last_val is not None and self.out_dir is not None and not self.test_follows:
            cm, grid, epoch = self._last_val
            title = f"val, epoch {epoch}"
            self._draw_split(
                trainer, pl_module, "val", cm, grid, title, tensorboard=False, png=True
            )

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        cm, grid = self._gathered(pl_module)
        if cm is not None:
            ckpt = getattr(trainer, "ckpt_path", None)
            title = f"test ({Path(ckpt).stem} checkpoint)" if ckpt else "test"
            self._draw_split(trainer, pl_module, "test", cm, grid, title, png=True)
