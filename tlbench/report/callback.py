"""The Hydra callback that writes the comparison report when a multirun ends.

Registered in conf/hydra/default.yaml under `hydra.callbacks.report`, so it fires under every
launcher (basic, joblib, submitit): Hydra calls `on_multirun_end` in the launching process once
every job has returned. A sweep killed before that point gets its report on demand with
`python -m tlbench.report <sweep dir>`. Turn it off with `hydra.callbacks.report.enabled=false`;
`+hydra.callbacks.report.allow_collapsed=true` is the report's `--allow-collapsed`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("tlbench.report")


class ReportCallback(Callback):
    def __init__(self, enabled: bool = True, plots: bool = True, allow_collapsed=False) -> None:
        self.enabled = enabled
        self.plots = plots
        self.allow_collapsed = allow_collapsed  # `report --allow-collapsed`

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.enabled:
            return
        try:
            sweep_dir = Path(str(config.hydra.sweep.dir))
            from tlbench.report.write import verdict_of, write_report

            path = write_report(sweep_dir, plots=self.plots, allow_collapsed=self.allow_collapsed)
        except Exception as exc:  # the report is a bonus: never turn a finished sweep into a crash
            log.warning(
                "tlbench: no comparison report for this sweep (%s: %s). Retry with "
                "`python -m tlbench.report <sweep dir>`.",
                type(exc).__name__,
                exc,
            )
            return
        log.info("comparison report: %s", path)
        print(f"tlbench comparison report: {path}", flush=True)
        for line in verdict_of(path):  # the sweep's answer, on screen
            print(line.replace("**", ""), flush=True)
