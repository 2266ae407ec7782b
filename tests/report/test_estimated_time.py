"""Issue 22 item 7 in the report: a run whose fit time is partly recovered from metrics.csv (a
segment killed outright) is marked in report.md and report.csv; and item 4: the temporary files
of a report killed mid-write are removed by the next report."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

from tests.helpers.report_runs import make_run
from tlbench.report.write import write_report


def _runs(root):
    for seed in (0, 1):
        make_run(
            root, f"t{seed}", strategy="transfer", seed=seed, spc=5, best=0.8, test=0.7, fit=30.0
        )
        make_run(
            root, f"s{seed}", strategy="scratch", seed=seed, spc=5, best=0.5, test=0.4, fit=60.0
        )
    path = root / "s1" / "summary.json"
    summary = json.loads(path.read_text())
    summary["fit_seconds_estimated"] = True  # resumed after a SIGKILL: part of it recovered
    path.write_text(json.dumps(summary))


def test_partly_estimated_fit_times_are_marked_with_a_footnote(tmp_path):
    _runs(tmp_path)
    md = write_report(tmp_path, plots=False).read_text()
    rows = [ln for ln in md.splitlines() if ln.startswith("| digits")]
    scratch = [ln for ln in rows if "| scratch |" in ln]
    transfer = [ln for ln in rows if "| transfer |" in ln]
    assert scratch and all("60 ± 0 s †" in ln for ln in scratch)
    assert transfer and not any("†" in ln for ln in transfer)
    assert "† Fit time partly estimated" in md and "metrics.csv's per-epoch times" in md
    with (tmp_path / "report.csv").open() as f:
        table = {r["strategy"]: r["fit_seconds_estimated"] for r in csv.DictReader(f)}
    assert table == {"transfer": "false", "scratch": "true"}


def test_no_mark_and_no_footnote_when_every_time_was_measured(tmp_path):
    make_run(tmp_path, "a", strategy="transfer", seed=0, spc=5, best=0.8, test=0.7, fit=30.0)
    md = write_report(tmp_path, plots=False).read_text()
    assert "†" not in md


def test_the_next_report_removes_what_a_killed_report_left(tmp_path):
    _runs(tmp_path)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
    )
    pid = int(dead.stdout)
    left = [
        f".report.csv.{pid}.tmp",
        f".report.md.{pid}.tmp.0123abcd",
        f".curves.png.{pid}.tmp.png",
    ]
    for name in left:
        (tmp_path / name).write_text("half")
    (tmp_path / "notes.tmp").write_text("not ours")  # not tlbench's naming: kept
    write_report(tmp_path, plots=False)
    names = {p.name for p in tmp_path.iterdir()}
    assert not names & set(left) and "notes.tmp" in names
