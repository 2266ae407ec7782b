"""Imports flow one way (docs/architecture.md): floor-1 helpers < config < data, models (never
each other) < runtime < training < inference, ranking < report < the entry points and cli.py.
A room imports only rooms below it; the one exception is config.app serving `model=` names from
models. Every import counts, lazy ones inside functions too."""

from __future__ import annotations

import ast

from tlbench.config import REPO_ROOT

LEVEL = {"base": 0, "config": 1, "data": 2, "models": 2, "runtime": 3, "training": 4,
         "inference": 5, "ranking": 5, "report": 6, "cli": 7}  # fmt: skip
ENTRY = {"__main__", "evaluate", "predict", "export", "rank", "cli"}
ALLOWED = {("tlbench.config.app", "models")}


def room(module: str) -> str:
    parts = module.split(".")[1:]
    if not parts:
        return "base"
    if parts[0] in LEVEL and parts[0] != "cli":
        return parts[0]
    return "cli" if parts[0] in ENTRY else "base"


def imports(path, module: str):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tlbench"):
            if node.module == "tlbench":
                yield from ((node.lineno, f"tlbench.{a.name}") for a in node.names)
            else:
                yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            yield from ((node.lineno, a.name) for a in node.names if a.name.startswith("tlbench"))


def test_no_import_goes_up_or_sideways():
    package = REPO_ROOT / "tlbench"
    bad = []
    for path in sorted(package.rglob("*.py")):
        parts = path.with_suffix("").relative_to(REPO_ROOT).parts
        module = ".".join(parts).removesuffix(".__init__")
        src = room(module)
        for line, target in imports(path, module):
            dst = room(target)
            if src == dst or (module, dst) in ALLOWED:
                continue
            if LEVEL[dst] >= LEVEL[src]:
                bad.append(f"{module}:{line} ({src}) -> {target} ({dst})")
    assert bad == [], "imports against the layering:\n" + "\n".join(bad)


def test_the_rule_catches_an_upward_import(tmp_path):
    """The checker itself: training importing inference is flagged, config importing errors is
    not (so an empty list above means something)."""
    assert LEVEL[room("tlbench.inference.evaluate")] > LEVEL[room("tlbench.training.run")]
    assert room("tlbench.errors") == "base" and room("tlbench.evaluate") == "cli"
    probe = tmp_path / "probe.py"
    probe.write_text("from tlbench.inference import checkpoint\nimport tlbench.report.write\n")
    assert [t for _, t in imports(probe, "tlbench.training.x")] == [
        "tlbench.inference",
        "tlbench.report.write",
    ]
