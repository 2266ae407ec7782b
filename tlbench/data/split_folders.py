"""Published folder datasets with fixed split folders under `root` (or one or two folders down,
as archives often unpack: root/hymenoptera_data/train), on `tlbench.data.folders`'
FolderDataModule (same file checks, same class-name rules).

`hymenoptera` (`train/`, `val/`) and `alien_vs_predator` (`train/`, `validation/`) ship no test
split: test = val unless a `test/` folder exists, so their test accuracy is then not an
independent estimate (say so when reporting it).
"""

from __future__ import annotations

from pathlib import Path

from tlbench.data import files
from tlbench.data.folders import FolderDataModule, complete
from tlbench.errors import TlbenchError


class SplitFolderDataModule(FolderDataModule):
    """A published folder dataset with fixed split folders under `root` (or under one folder
    inside it, as archives often unpack: root/hymenoptera_data/train)."""

    split_dirs = {"train": "train", "val": "val"}
    url: str | None = None  # an archive torchvision's downloader can fetch
    source = ""

    def __init__(self, root: str, download: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.root, self.download = files.resolve(root), download

    def _locate(self) -> Path | None:
        """root, or the shallowest folder at most two levels below it holding the split dirs."""
        levels = [[self.root], sorted(self.root.glob("*")), sorted(self.root.glob("*/*"))]
        for level in levels if self.root.is_dir() else []:
            hits = [d for d in level if all((d / s).is_dir() for s in self.split_dirs.values())]
            if hits:
                return hits[0]
        return None

    def _missing(self, cause: BaseException | None = None) -> TlbenchError:
        layout = " and ".join(f"{s}/<class>/<images>" for s in self.split_dirs.values())
        return files.missing(
            self.title,
            [self.root],
            f"{layout} (directly or one or two folders down)",
            self.url or self.source,
            value=str(self.root),
            can_download=self.url is not None,
            cause=cause,
        )

    def prepare_data(self) -> None:
        """The only place that downloads (see CIFAR10DataModule.prepare_data)."""
        if self._locate() is not None:
            return
        if not (self.download and self.url):
            raise self._missing()
        from torchvision.datasets.utils import download_and_extract_archive

        files.download(
            lambda: download_and_extract_archive(self.url, str(self.root)), self._missing
        )
        if self._locate() is None:
            raise self._missing()

    def load_splits(self):
        base = self._locate()
        if base is None:
            raise self._missing()
        dirs = {s: (base / d, "data.root") for s, d in self.split_dirs.items()}
        if (base / "test").is_dir():
            dirs["test"] = (base / "test", "data.root")
        splits, names = self.scan(dirs)
        return complete(splits, 0.0, 0.0, 0), names


class HymenopteraDataModule(SplitFolderDataModule):
    title = "hymenoptera (ants vs bees)"
    url = "https://download.pytorch.org/tutorial/hymenoptera_data.zip"  # PyTorch's tutorial set


class AlienVsPredatorDataModule(SplitFolderDataModule):
    title = "alien vs predator"
    split_dirs = {"train": "train", "val": "validation"}
    source = (
        "https://www.kaggle.com/datasets/pmigdal/alien-vs-predator-images (needs a free Kaggle "
        "account, so there is no automatic download)"
    )
