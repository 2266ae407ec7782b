"""BaseDataModule: what every dataset shares -- splits, class subsets, label budgets (via
`tlbench.data.splits`), preprocessing from the backbone, and the two input paths: in-memory
uint8 data (`in_memory = True`) transformed as batches on the training device
(`tlbench.data.batched`), and image files transformed per image in DataLoader workers.

A concrete DataModule says how to read its splits (`load_splits`) and a file's item as a uint8
CHW tensor (`read`); downloads only in `prepare_data()`. Why: docs/architecture.md, "Input pipeline".
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import lightning as L
import torch
from torch.utils.data import DataLoader

from tlbench.data import loading, transforms
from tlbench.data.batched import BatchTransform
from tlbench.data.loading import ImageDataset, IndexBatches
from tlbench.data.splits import (  # noqa: F401  (check_* re-exported for tlbench.config.validation)
    Split,
    budget_indices,
    check_budget,
    check_fraction,
    select_classes,
)
from tlbench.errors import TlbenchError, one_of
from tlbench.preprocess import Preprocess

log = logging.getLogger("tlbench")


class BaseDataModule(L.LightningDataModule):
    in_memory = True  # tensors in RAM: worker processes cost more than they save

    def __init__(
        self,
        name: str | None = None,
        batch_size: int = 64,
        image_size: int | None = None,
        augment: str = "none",
        preprocess: dict | Preprocess | None = None,
        classes: list[str] | None = None,
        samples_per_class: int | None = None,
        train_fraction: float | None = None,
        subset_seed: int = 0,
        num_workers: int | str = "auto",
        pin_memory: bool | str = "auto",
        persistent_workers: bool | str = "auto",
    ) -> None:
        super().__init__()
        self.name = name or type(self).__name__
        self.batch_size, self.image_size, self.augment = batch_size, image_size, augment
        pre = (
            Preprocess.from_dict(preprocess)
            if isinstance(preprocess, dict)
            else (preprocess or Preprocess())
        )
        self.preprocess = pre.at_size(image_size)
        self.classes, self.subset_seed = classes, subset_seed
        self.samples_per_class, self.train_fraction = samples_per_class, train_fraction
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.persistent_workers = persistent_workers
        # Cheap checks first, so a typo fails before any file is read.
        check_budget(samples_per_class, train_fraction)
        if augment not in transforms.AUGMENTS:
            raise one_of("data.augment", augment, transforms.AUGMENTS, what="augmentation preset")
        loading.check_workers(num_workers)
        self.splits: dict[str, Split] = {}
        self.class_names: list[str] = []
        # Files skipped at setup as unreadable: [{"path", "reason"}]; training/run.py puts them in
        # summary.json. Only folder datasets can have any.
        self.bad_files: list[dict[str, str]] = []
        self._batch_transforms: dict[bool, BatchTransform] = {}

    # -- to implement --------------------------------------------------------------------------
    def load_splits(self) -> tuple[dict[str, Split], list[str]]:
        """Return {'train','val','test'} splits and the class names (index order)."""
        raise NotImplementedError

    def read(self, item) -> torch.Tensor:
        """One item -> uint8 tensor (C, H, W). Tensor-backed datasets hold it already."""
        return item

    def reader(self) -> Callable:
        """What DataLoader workers call on each item. Folder datasets return a small picklable
        object instead of a bound method, so spawned workers (macOS, Windows) do not pickle the
        whole DataModule."""
        return self.read

    # -- shared ----------------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        if not self.class_names:
            self.setup()
        return len(self.class_names)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        splits, names = self.load_splits()
        if self.classes:
            splits, names = select_classes(splits, names, self.classes)
        if self.samples_per_class is not None or self.train_fraction is not None:
            train = splits["train"]
            splits["train"] = train.take(
                budget_indices(
                    train.targets, self.samples_per_class, self.train_fraction, self.subset_seed
                )
            )
        empty = [k for k in ("train", "val", "test") if k in splits and len(splits[k].targets) == 0]
        if empty:
            raise TlbenchError(
                f"the {' and '.join(empty)} split(s) of {self.name} hold no images",
                key="data.classes" if self.classes else "data",
                value=list(self.classes) if self.classes else self.name,
                fix="use more images per class or smaller val/test fractions",
            )
        if len(names) < 2:
            raise TlbenchError(
                f"{self.name} has {len(names)} class ({', '.join(map(str, names)) or 'none'}): a "
                "classifier needs at least 2 classes to tell apart",
                key="data.classes" if self.classes else "data",
                value=list(self.classes) if self.classes else self.name,
                allowed="data with at least 2 classes (for a folder: one sub-folder per class)",
                fix="add a second class folder, or pick at least 2 classes with data.classes",
            )
        self.splits, self.class_names = splits, names
        self._cap_batch_size()

    def _cap_batch_size(self) -> None:
        """A batch larger than every split holds the whole split anyway: capped to the largest
        split's size, so nothing sized by the batch (pinned buffers, cached-feature slices, the
        precision probe) is allocated for images that do not exist (`data.batch_size=1000000000`
        tried to allocate 12 TB). Each loader still yields the same batches."""
        largest = max(len(s.targets) for s in self.splits.values())
        if self.batch_size > largest:
            log.warning(
                "data.batch_size=%d is larger than any split of %s (largest: %d images); "
                "using %d (one batch per split)",
                self.batch_size,
                self.name,
                largest,
                largest,
            )
            self.batch_size = largest

    def dataset(self, split: str, train: bool | None = None) -> ImageDataset:
        """The per-sample path: (float image, label) per index, transformed one at a time.
        Files train through it; for in-memory data it serves single images (e.g. the prediction
        grids) and bench/pipeline.py's comparison."""
        self.setup()
        train = split == "train" if train is None else train
        return ImageDataset(
            self.splits[split],
            self.reader(),
            transforms.build(self.preprocess, self.augment, train),
        )

    def batch_transform(self, train: bool) -> BatchTransform:
        """uint8 batch on the device -> normalised float batch (in-memory data); one per mode."""
        if train not in self._batch_transforms:
            self._batch_transforms[train] = BatchTransform(self.preprocess, self.augment, train)
        return self._batch_transforms[train]

    def loader_settings(self) -> dict:
        """DataLoader knobs from the one worker policy (tlbench.data.loading)."""
        return loading.loader_settings(
            self.num_workers, self.in_memory, self.pin_memory, self.persistent_workers
        )

    def loader(self, split: str, shuffle: bool = False, batch_size: int | None = None):
        """A DataLoader of `split`: uint8 index batches for in-memory data (transform them with
        `batch_transform` after moving them), per-sample float images for files."""
        self.setup()
        size = batch_size or self.batch_size
        if self.in_memory:
            data = self.splits[split]
            return DataLoader(
                IndexBatches(data.items, data.targets),
                batch_size=size,
                shuffle=shuffle,
                collate_fn=loading.as_is,
                **self.loader_settings(),
            )
        return DataLoader(
            self.dataset(split), batch_size=size, shuffle=shuffle, **self.loader_settings()
        )

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self.loader("test")

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """In-memory batches arrive on the device as uint8 and are transformed there; training
        batches get the random augmentation, validation/test/predict the eval transform."""
        x, y = batch
        if x.dtype != torch.uint8:  # files: already transformed in the workers
            return x, y
        training = self.trainer is not None and self.trainer.training
        x = self.batch_transform(training)(x)
        if self.trainer is not None:  # Lightning casts inputs before this hook: uint8 was skipped
            x = self.trainer.precision_plugin.convert_input(x)  # 64/16/bf16-true: the net's dtype
        return x, y

    def batches(
        self,
        split: str,
        device: torch.device | str = "cpu",
        train: bool | None = None,
        batch_size: int | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(normalised float images, labels) on `device` for loops outside a Trainer (feature
        extraction, bench/): shuffled and augmented when `train` (default: split == 'train'),
        else in order with the eval transform -- the same path training takes."""
        train = split == "train" if train is None else train
        if self.in_memory:
            loader = self.loader(split, shuffle=train, batch_size=batch_size)
        else:
            loader = DataLoader(
                self.dataset(split, train=train),
                batch_size=batch_size or self.batch_size,
                shuffle=train,
                **self.loader_settings(),
            )
        transform = self.batch_transform(train)
        for x, y in loader:
            x = x.to(device, non_blocking=True)
            yield (transform(x) if x.dtype == torch.uint8 else x), y.to(device)

    def sizes(self) -> dict[str, int]:
        self.setup()
        return {k: len(v.targets) for k, v in self.splits.items()}
