"""How numbers and text appear in report.md and report.csv (one place, so every table agrees)."""

from __future__ import annotations

from pathlib import Path


def pct(m, s=None) -> str:
    if m is None:
        return "–"
    return f"{100 * m:.1f} ± {100 * s:.1f} %" if s is not None else f"{100 * m:.1f} %"


def seconds(m, s=None) -> str:
    if m is None:
        return "–"
    text = f"{m:.0f}" if m >= 10 else f"{m:.1f}"
    if s is None:
        return f"{text} s"
    return f"{text} ± {s:.0f} s" if m >= 10 else f"{text} ± {s:.1f} s"


def count(m) -> str:
    if m is None:
        return "–"
    if m >= 1e6:
        return f"{m / 1e6:.2f} M"
    return f"{m:,.0f}"


def ratio(x: float) -> str:
    """A cost ratio as people say it: '1/30', '1/2.5', '1.0x', '2.5x', '30x'."""
    if x <= 0:
        return "–"
    if x < 1:
        inv = 1 / x
        return f"1/{inv:.0f}" if inv >= 10 else f"1/{inv:.1f}"
    return f"{x:.0f}x" if x >= 10 else f"{x:.1f}x"


def cell(text) -> str:
    """A markdown table cell: no pipes or newlines breaking the row."""
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def row(cells) -> str:
    return "| " + " | ".join(cell(c if c is not None else "–") for c in cells) + " |"


def header(names) -> list[str]:
    return [row(names), "|" + "---|" * len(names)]


def short(text: str | None, limit: int = 300) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def rel(path: Path, root: Path) -> str:
    try:
        relative = path.resolve().relative_to(root.resolve())
    except ValueError:
        return str(path)
    return str(relative) if str(relative) != "." else "."


def csv_value(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else f"{v:.6g}"
    return v
