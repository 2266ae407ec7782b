"""`ParamDigest`: each DDP rank's parameters, summarised, to check that the ranks train one model.

Not in conf/callbacks/default.yaml; add it to a run with
`+callbacks.param_digest._target_=tlbench.training.callbacks.ParamDigest
+callbacks.param_digest.out_dir=<dir>`. At the end of fit every rank writes
`param_digest.rank<k>.json` into `out_dir`: a sha256 of each parameter's bytes and of all of them.
DDP keeps the ranks' parameters bit-identical (every step's gradients are averaged, the start is
broadcast), so the files must be equal; tests/training/test_ddp_identical.py compares them.
Buffers are left out: DDP broadcasts rank 0's buffers (BatchNorm statistics) only at the next
forward, so after the last step each rank legitimately holds its own.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import lightning as L
import torch


def digest(tensor: torch.Tensor) -> str:
    data = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    return hashlib.sha256(data).hexdigest()


class ParamDigest(L.Callback):
    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)

    def on_train_end(self, trainer, pl_module) -> None:
        params = {name: digest(p) for name, p in pl_module.named_parameters()}
        whole = hashlib.sha256("".join(params.values()).encode()).hexdigest()
        record = {"rank": trainer.global_rank, "world_size": trainer.world_size}
        record.update(all=whole, params=params)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"param_digest.rank{trainer.global_rank}.json"
        path.write_text(json.dumps(record, indent=1))
