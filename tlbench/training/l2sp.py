"""L2-SP (Li et al., ICML 2018): fine-tuning regularised towards the starting point. Parameters
that came from the pretrained source are pulled towards their starting values (alpha), the others
(new heads) get plain weight decay (beta); the optimizer's own weight decay is switched off."""

from __future__ import annotations

import torch
from torch import nn

from tlbench.errors import TlbenchError
from tlbench.training import strategies


class L2SP:
    def __init__(self, reference: dict[str, torch.Tensor], alpha: float, beta: float) -> None:
        # Kept outside the state dict: the reference is the pretrained source, rebuilt on resume.
        self.reference, self.alpha, self.beta = reference, alpha, beta

    @classmethod
    def from_strategy(
        cls, net: nn.Module, head_names: list[str], strategy: dict, pretrained: bool
    ) -> L2SP | None:
        """None unless `strategy.l2sp` sets alpha or beta; copies the backbone weights that will
        train at some epoch (the schedule's union) as they are now, i.e. pretrained."""
        cfg = strategy.get("l2sp") or {}
        if not (cfg.get("alpha") or cfg.get("beta")):
            return None
        if not strategy.get("pretrained", True):
            raise TlbenchError(
                "L2-SP pulls weights towards their pretrained values; a scratch run has none",
                key="strategy.l2sp",
                value=dict(cfg),
                fix="use it with a pretrained strategy",
            )
        heads = set(strategies.select(net, head_names, ["head"]))
        union = strategies.plan(net, head_names, strategy, epoch=None).trainable
        reference = {
            n: p.detach().clone()
            for n, p in net.named_parameters()
            if n in union and n not in heads
        }
        return cls(reference, float(cfg.get("alpha") or 0.0), float(cfg.get("beta") or 0.0))

    def penalty(
        self, net: nn.Module, device: torch.device, trainable: set[str] | None = None
    ) -> torch.Tensor:
        """Over the parameters that train now: `trainable` (the module's plan; under DDP a
        not-yet-unfrozen parameter requires grad too), else those that require grad."""
        total = torch.zeros((), device=device)
        for name, p in net.named_parameters():
            if (name not in trainable) if trainable is not None else not p.requires_grad:
                continue
            if name in self.reference:
                ref = self.reference[name]
                if ref.device != p.device:
                    ref = self.reference[name] = ref.to(p.device)
                total = total + 0.5 * self.alpha * (p - ref).pow(2).sum()
            elif self.beta:
                total = total + 0.5 * self.beta * p.pow(2).sum()
        return total
