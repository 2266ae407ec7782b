"""Where datasets live on disk, what to say when they are missing, and downloading them.

Every "not found" error names the folder(s) looked in, the layout expected there and where the
data comes from, because that is what a user needs to fix it. Downloads go through torchvision's
own downloaders (which check the archive's md5) and only run with `data.download=true`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from tlbench.config.data_values import resolve  # noqa: F401 (the rule is config's)
from tlbench.errors import TlbenchError


def missing(
    dataset: str,
    looked_in: Iterable[Path],
    layout: str,
    source: str,
    *,
    key: str = "data.root",
    value: object = None,
    can_download: bool = True,
    cause: BaseException | None = None,
) -> TlbenchError:
    """The error for a dataset that is not on disk (and, with `cause`, could not be downloaded)."""
    where = " and ".join(str(p) for p in looked_in)
    problem = f"{dataset} was not found: looked in {where} for {layout}"
    if cause is not None:
        detail = " ".join(str(cause).split())  # torchvision's messages span several lines
        problem += f"; the download failed too ({type(cause).__name__}: {detail})"
    into = f"into {value}" if value else "there"
    get = f"get it from {source} and unpack it {into}, or point {key} at your copy"
    if can_download and cause is None:
        fix = f"set data.download=true on a machine with internet access, or {get}"
    elif can_download:
        fix = f"check the network connection and retry, or {get}"
    else:
        fix = get
    return TlbenchError(problem, key=key, value=value, fix=fix)


def download(fetch: Callable[[], object], error: Callable[[BaseException], TlbenchError]) -> None:
    """Run a torchvision downloader; any failure (offline, proxy, bad md5) becomes `error(exc)`."""
    try:
        fetch()
    except TlbenchError:
        raise
    except Exception as exc:  # URLError, HTTPError, RuntimeError("File not found or corrupted")...
        raise error(exc) from exc
