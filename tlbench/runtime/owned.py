"""What a run dir owns, and where a run dir may be: `overwrite=true` deletes only what
tlbench wrote, and a run never writes through someone else's files.

`claim` writes the manifest `tlbench.owned.json` (the names in `OWNED`); `inspect` refuses foreign
entries, owned names in a dir tlbench never claimed, and links out of the dir; `clear` deletes the
owned entries; `check_place` refuses places that must never be run dirs (the home folder, the
repository, a dataset folder, ...). Rules: docs/architecture.md, "Run dirs".
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from tlbench import atomic
from tlbench.config.app import CONF_DIR, PACKAGE_DIR, REPO_ROOT
from tlbench.errors import TlbenchError
from tlbench.runtime.rundir import LOCK

MANIFEST = "tlbench.owned.json"
OWNED = (
    ".hydra",  # Hydra: config.yaml, hydra.yaml, overrides.yaml
    "train.log",  # Hydra's job log (conf/hydra/default.yaml)
    "summary.json",
    "metrics.csv",
    "checkpoints",
    "tensorboard",
    "confusion_matrix.png",
    "predictions.png",
    "evaluation.json",  # python -m tlbench.evaluate | predict | export, and their logs
    "evaluate.log",
    "predictions.csv",
    "predict.log",
    "model.pt",
    "model.onnx",
    "export.log",
    LOCK,
    MANIFEST,
)
KEPT = (LOCK, MANIFEST)  # the launch holds the lock; the manifest keeps the dir claimed
TMP = re.compile(r"\.(?P<name>.+)\.\d+\.tmp.*")  # tlbench.atomic.replacing's temporary files


def owns(run_dir: Path) -> set[str]:
    manifest = run_dir / MANIFEST
    if manifest.is_file() and not manifest.is_symlink():
        try:
            listed = set(json.loads(manifest.read_text(encoding="utf-8"))["owns"])
        except (OSError, ValueError, KeyError, TypeError):
            listed = set(OWNED)
        return (listed & set(OWNED)) | set(KEPT)  # a planted manifest cannot claim more
    if (run_dir / ".hydra").is_dir() and not (run_dir / ".hydra").is_symlink():
        return set(OWNED)  # a run dir written before manifests existed
    return set(KEPT)


def _is_owned(name: str, owned: set[str]) -> bool:
    tmp = TMP.fullmatch(name)
    return name in owned or (tmp is not None and tmp["name"] in owned)


def _links_out(run_dir: Path, entry: Path) -> list[str]:
    """`entry` and what it holds: symbolic links that point outside `run_dir`."""
    root = run_dir.resolve()
    found = []
    paths = [entry]
    if entry.is_dir() and not entry.is_symlink():
        for parent, dirs, files in os.walk(entry):  # never follows links
            paths += [Path(parent) / n for n in dirs + files]
    for path in paths:
        if path.is_symlink() and not path.resolve().is_relative_to(root):
            found.append(f"{path.relative_to(run_dir)} -> {os.readlink(path)}")
    return found


def inspect(run_dir: Path, key: str, value: str, overwrite: bool) -> None:
    """Refuse a dir whose foreign entries overwrite=true would meet, whose owned names belong to
    someone else, or whose owned entries link outside it; nothing is changed."""
    if not run_dir.is_dir():
        return
    owned = owns(run_dir)
    entries = sorted(p.name for p in run_dir.iterdir())
    foreign = [n for n in entries if not _is_owned(n, owned)]
    taken = [n for n in foreign if _is_owned(n, set(OWNED))]
    links = [x for n in entries if n not in foreign for x in _links_out(run_dir, run_dir / n)]
    if taken or links:
        what = (
            f"{', '.join(taken)} (tlbench did not write them: the dir has no {MANIFEST})"
            if taken
            else "symbolic links pointing outside it: " + ", ".join(links)
        )
        raise TlbenchError(
            f"this run dir holds {what}; a run would write into them (nothing was changed)",
            key=key,
            value=value,
            fix="move them away, or choose another dir",
        )
    if overwrite and foreign:
        shown = ", ".join(foreign[:8]) + (
            f" and {len(foreign) - 8} more" if len(foreign) > 8 else ""
        )
        raise TlbenchError(
            f"overwrite=true deletes only what tlbench wrote, and this dir also holds {shown}, "
            f"which tlbench did not write (nothing was deleted)",
            key=key,
            value=value,
            fix="move those files out of the run dir, or choose another dir for the new run",
        )


def clear(run_dir: Path) -> None:
    """`overwrite=true` after `inspect`: delete the owned entries (links, never their targets)."""
    owned = owns(run_dir)
    for entry in sorted(run_dir.iterdir()):
        if entry.name in KEPT or not _is_owned(entry.name, owned):
            continue
        _delete(entry)


def _delete(entry: Path) -> None:
    """A link is removed itself, never followed. By full path (not shutil.rmtree's calls
    relative to an open folder), so audit hooks see what is deleted."""
    if entry.is_symlink() or not entry.is_dir():
        entry.unlink()
        return
    for parent, dirs, files in os.walk(entry, topdown=False):  # never follows links
        for name in files:
            os.unlink(os.path.join(parent, name))
        for name in dirs:
            path = os.path.join(parent, name)
            os.unlink(path) if os.path.islink(path) else os.rmdir(path)
    os.rmdir(entry)


def claim(run_dir: Path) -> None:
    """Record that tlbench owns this dir's `OWNED` names (once; before Hydra writes into it)."""
    manifest = Path(run_dir) / MANIFEST
    if not manifest.is_file():
        text = json.dumps({"written_by": "tlbench", "owns": list(OWNED)}, indent=1)
        atomic.write_text(manifest, text + "\n")


def _within(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


def _refusal(run_dir: Path, data_dirs: list[Path]) -> str | None:
    home, repo = Path.home().resolve(), REPO_ROOT.resolve()
    outputs = repo / "outputs"
    if run_dir == run_dir.parent:
        return "the file system root"
    if _within(home, run_dir):
        return "the home folder (or a folder above it)"
    if _within(repo, run_dir):
        return "the repository root (or a folder above it)"
    if _within(run_dir, PACKAGE_DIR.resolve()):
        return "inside the tlbench package"
    if _within(run_dir, CONF_DIR.resolve()):
        return "inside the configs (conf/)"
    if _within(run_dir, repo) and (run_dir == outputs or not _within(run_dir, outputs)):
        return "inside the repository, where only outputs/<...> is for runs"
    for data in data_dirs:
        if _within(run_dir, data) or _within(data, run_dir):
            return f"a dataset folder, or a folder holding one ({data})"
    return None


def check_place(run_dir: Path, key: str, value: str, data_dirs: list[Path] = ()) -> None:
    """Refuse a run dir in a place where a run (or overwrite=true) would mix with, or delete,
    something else: before anything is written."""
    where = Path(os.path.abspath(os.path.expanduser(run_dir))).resolve()
    reason = _refusal(where, [Path(d).resolve() for d in data_dirs])
    if reason is not None:
        raise TlbenchError(
            f"a run dir cannot be {reason}: {where} (nothing was written)",
            key=key,
            value=value,
            fix=f"choose a dir of its own, e.g. {key}=outputs/runs/<name> or a new folder "
            "outside the repository",
        )
