"""`python -m tlbench.report <dir>`: write the comparison report of every run under a folder.

User errors (no such folder, no run in it) follow tlbench's one error policy
(`tlbench.errors.say_error`): one paragraph naming the key, the value and the fix, exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tlbench.errors import TlbenchError
from tlbench.report.write import CSV_NAME, verdict_of, write_report


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tlbench.report",
        description="Write report.md, report.csv and PNG plots comparing every run under DIR "
        "(a sweep dir, several sweeps, or a sweep still running): per-strategy selection on "
        "validation, a verdict, tables and plots.",
    )
    parser.add_argument("dir", help="folder to search (recursively) for summary.json files")
    parser.add_argument("--no-plots", action="store_true", help="tables only (faster)")
    parser.add_argument(
        "--across-models",
        action="store_true",
        help="compare every (strategy, model) pair of a data set and label budget in one verdict "
        "(e.g. a source model's transfer vs ImageNet transfer vs scratch), instead of the "
        "strategies within each model",
    )
    parser.add_argument(
        "--allow-collapsed",
        action="store_true",
        help="let selection pick a setting whose runs collapsed after a schedule switch (lp_ft, "
        "gradual) for its probe epoch's val accuracy; by default stable settings rank first",
    )
    return parser.parse_args(argv)


def _report(root: Path, plots: bool, across_models=False, allow_collapsed=False) -> Path:
    if not root.is_dir():
        raise TlbenchError(
            "no such directory" if not root.exists() else "not a directory",
            key="dir",
            value=str(root),
            allowed="a folder of tlbench runs, e.g. outputs/multiruns/<timestamp>",
            fix="pass the sweep dir printed by `python -m tlbench --multirun ...`",
        )
    try:
        return write_report(
            root, plots=plots, across_models=across_models, allow_collapsed=allow_collapsed
        )
    except LookupError:
        raise TlbenchError(
            "found no summary.json (no tlbench run) in this folder or below",
            key="dir",
            value=str(root),
            fix="point at a run dir or a sweep dir, e.g. outputs/multiruns/<timestamp>",
        ) from None


def main(argv: list[str] | None = None) -> int:
    from tlbench.errors import full_errors, say_error

    args = _parse(argv)
    try:
        path = _report(
            Path(args.dir),
            plots=not args.no_plots,
            across_models=args.across_models,
            allow_collapsed=args.allow_collapsed,
        )
    except Exception as exc:
        if full_errors():
            raise
        return say_error(exc)
    print(f"comparison report: {path} (+ {CSV_NAME}{'' if args.no_plots else ', PNG plots'})")
    for line in verdict_of(path):
        print(line.replace("**", ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
