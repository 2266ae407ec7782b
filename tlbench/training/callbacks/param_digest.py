"""`ParamDigest`: each DDP rank's parameters, summarised, to check that the ranks train one model.

Not in conf/callbacks/default.yaml; add it with
`+callbacks.param_digest._target_=tlbench.training.callbacks.ParamDigest
+callbacks.param_digest.out_dir=<dir>`. At the end of fit every rank writes
`param_digest.rank<k>.json` (a sha256 per parameter and of all): the files must be equal.
Why buffers are left out: docs/architecture.md, "DDP launches".
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
