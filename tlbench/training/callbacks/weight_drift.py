"""What actually trained: per stage, how far the weights moved from where the run started.

`weight_drift[stage] = ||w - w0|| / ||w0||` (stages from tlbench.models.stages), `head_norm`, and
`bn_stats_changed[stage]` for BatchNorm running statistics; w0 is taken in `setup`, before a
checkpoint is restored. A stage declared frozen that changed gets a warning in the summary.
Logged per epoch as `drift/<stage>`; cached-feature runs are not measured.
Why: docs/architecture.md, "What trained".
"""

from __future__ import annotations

import time

import lightning as L
import torch

from tlbench.models.stages import stage_names, stages


def _fingerprint(tensors) -> float:
    # summed in float64 without a float64 copy of each tensor (the copy made this 5x slower)
    return (
        float(sum(t.detach().abs().sum(dtype=torch.float64) for t in tensors)) if tensors else 0.0
    )


class WeightDrift(L.Callback):
    def __init__(self) -> None:
        self.findings: dict = {}
        self._seconds = 0.0

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit":
            return
        start, net = time.perf_counter(), pl_module.net
        params, buffers = dict(net.named_parameters()), dict(net.named_buffers())
        groups = stages(net, pl_module.head_names)
        self.names = stage_names(groups)
        self.groups = dict(zip(self.names, groups, strict=True))
        may_train = set(pl_module.plan.trainable) | set(getattr(pl_module, "_synced", ()))
        may_train |= set(_schedule_union(pl_module))
        self.w0 = {n: params[n].detach().clone() for g in groups for n in g if n in may_train}
        self.frozen_print = {
            s: _fingerprint([params[n] for n in g if n not in may_train])
            for s, g in self.groups.items()
        }
        self.bn = {s: self._bn_buffers(g, buffers) for s, g in self.groups.items()}
        self.bn0 = {s: _fingerprint([buffers[b] for b in bs]) for s, bs in self.bn.items()}
        self.may_train = may_train
        self._seconds += time.perf_counter() - start

    @staticmethod
    def _bn_buffers(group: list[str], buffers: dict) -> list[str]:
        modules = {p.rsplit(".", 1)[0] for p in group}
        return [b for b in buffers if b.endswith(("running_mean", "running_var"))
                and b.rsplit(".", 1)[0] in modules]  # fmt: skip

    def drift(self, pl_module) -> dict[str, float]:
        params = dict(pl_module.net.named_parameters())
        out = {}
        for s, g in self.groups.items():
            moved = [n for n in g if n in self.w0]
            if not moved:
                out[s] = 0.0
                continue
            for n in moved:  # w0 follows the network to its device once (not every epoch)
                if self.w0[n].device != params[n].device:
                    self.w0[n] = self.w0[n].to(params[n].device)
            # one device-to-host read per stage and epoch
            num = float(sum((params[n].detach() - self.w0[n]).float().pow(2).sum() for n in moved))
            den = float(sum(self.w0[n].float().pow(2).sum() for n in moved))
            out[s] = (num / den) ** 0.5 if den > 0 else float(num > 0)
        return out

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if pl_module.inputs == "features":
            return  # the backbone never runs: nothing to measure
        start = time.perf_counter()
        for s, v in self.drift(pl_module).items():
            pl_module.log(f"drift/{s}", v, on_epoch=True, sync_dist=False)
        self._seconds += time.perf_counter() - start

    def on_fit_end(self, trainer, pl_module) -> None:
        start = time.perf_counter()
        net = pl_module.net
        heads = [p for n, p in net.named_parameters()
                 if any(n.startswith(h + ".") for h in pl_module.head_names)]  # fmt: skip
        self.findings["head_norm"] = round(float(torch.sqrt(sum(p.detach().pow(2).sum()
                                                                for p in heads))), 4)  # fmt: skip
        if pl_module.inputs == "features":
            self.findings.update(
                weight_drift={s: 0.0 for s in self.names},
                bn_stats_changed={s: False for s in self.names},
                weight_drift_basis="cached features: the backbone is frozen by construction "
                "(never run in training), not measured",
            )
        else:
            self._measure(pl_module)
        self._seconds += time.perf_counter() - start
        self.findings["weight_drift_seconds"] = round(self._seconds, 3)

    def _measure(self, pl_module) -> None:
        params, buffers = (
            dict(pl_module.net.named_parameters()),
            dict(pl_module.net.named_buffers()),
        )
        drift = self.drift(pl_module)
        bn = {s: bool(self.bn[s]) and _fingerprint([buffers[b] for b in self.bn[s]]) != self.bn0[s]
              for s in self.names}  # fmt: skip
        warnings = []
        for s, g in self.groups.items():
            frozen = [n for n in g if n not in self.may_train]
            if frozen and _fingerprint([params[n] for n in frozen]) != self.frozen_print[s]:
                warnings.append(f"stage {s}: parameters the strategy froze changed")
            if (
                not any(n in self.may_train for n in g)
                and bn[s]
                and not _bn_may_update(pl_module, s, self.bn[s])
            ):
                warnings.append(f"stage {s}: frozen, but its BatchNorm running statistics changed")
        self.findings.update(
            weight_drift={s: round(v, 6) for s, v in drift.items()},
            bn_stats_changed=bn,
            weight_drift_basis="||w - w0|| / ||w0|| from the run's start",
        )
        if warnings:
            self.findings["weight_drift_warnings"] = warnings


def _schedule_union(pl_module) -> list[str]:
    """Every parameter any phase of a freeze schedule trains (lp_ft, gradual)."""
    cfg = pl_module.hparams.strategy
    if not cfg.get("schedule"):
        return []
    from tlbench.training import strategies

    return strategies.plan(pl_module.net, pl_module.head_names, cfg, epoch=None).trainable


def _bn_may_update(pl_module, stage: str, buffers: list[str]) -> bool:
    """A frozen stage's BN statistics may update when the strategy leaves frozen BN in train
    mode on purpose (strategy.freeze_bn: false); pinned modules are in plan.eval_modules."""
    pinned = set(pl_module.plan.eval_modules)
    return any(b.rsplit(".", 1)[0] not in pinned for b in buffers)
