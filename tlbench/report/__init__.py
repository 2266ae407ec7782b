"""The comparison report: runs -> configurations -> tables, plots and readings (report.md/.csv)."""

from tlbench.report.tables import write_report

__all__ = ["write_report"]
