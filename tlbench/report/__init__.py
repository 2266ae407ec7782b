"""The comparison report: runs -> configurations -> per-strategy selection on validation ->
verdict, tables and plots (report.md / report.csv / PNGs).

Modules, in the order data flows through them (none imports a later one):
runs (read run dirs) -> groups (configurations, mean ± std) -> selection (each strategy's best
setting on validation) -> verdict / tables / readings (text) -> plots (PNGs) -> write
(`write_report`); `callback` (Hydra, end of a multirun) and `__main__` (CLI) call `write_report`.
"""

from tlbench.report.write import write_report

__all__ = ["write_report"]
