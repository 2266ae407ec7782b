"""Feature extraction shared by DDP ranks: each rank extracts only its shard of each split.

Inside fit (`CachedFeatures.setup`, once the process group exists): rank 0 claims the key and
says which splits are missing, each rank extracts its contiguous 1/N, the shards are gathered
into each split's full tensors on every rank, and rank 0 writes the cache. A wrong guess of the
number of ranks (`expected_ranks`) costs only speed.
Why inside fit: docs/architecture.md, "Feature cache".
"""

from __future__ import annotations

import contextlib
import logging
import time

import torch

from tlbench.training import cache_claim, feature_cache, feature_store

log = logging.getLogger("tlbench")


class ShardedExtraction:
    """What `CachedFeatures.setup` runs on every rank: extract what the cache lacks sharded over
    the ranks and return {split: (head inputs, labels)} for this rank's `missing`. `wants`:
    (need, missing), {split: images, a prefix} the run uses and those this rank did not find.
    Every rank of a DDP run has one, even with nothing missing: the ranks looked at the cache at
    different moments (another job may have written it between), and collectives need them all.
    `extracted`: the images this rank computed, per split."""

    def __init__(self, module, pixels, path, wants, precision, device, stop=None) -> None:
        self.module, self.pixels, self.path = module, pixels, path
        self.need, self.missing = dict(wants[0]), dict(wants[1])
        self.precision, self.device, self.stop = precision, device, stop
        self.numerics = feature_store.numerics(device)  # the key's, before the run sets its own
        self.extracted: dict[str, int] = {}

    def run(self, trainer) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        import torch.distributed as dist

        world, rank = trainer.world_size, trainer.global_rank
        if world == 1 or not (dist.is_available() and dist.is_initialized()):
            if not self.missing:
                return {}
            entries, self.extracted, _ = feature_cache.obtain(
                self.path, self.module, self.pixels, self.precision, self.device, self.stop,
                self.missing, ranks=1,
            )  # fmt: skip
            return {s: (entries[s].x[:n], entries[s].y[:n]) for s, n in self.missing.items()}
        self.module.to(self.device)
        got = {}
        with contextlib.ExitStack() as claim:
            box = [None]
            if rank == 0 and self.missing:  # the claim against other jobs; what they wrote
                claim.enter_context(cache_claim.claim(self.path.with_suffix(".lock"), self.stop))
                entries = feature_cache.read(self.path, self.device) or {}  # is not extracted
                box = [feature_cache.missing_images(entries, self.need)]
            elif rank == 0:  # rank 0 found it all: the others read what they missed
                box = [{}]
            dist.broadcast_object_list(box, src=0)
            devices = [self.device] if self.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices), feature_store.same_numerics(self.numerics):
                for split, n in box[0].items():
                    got[split] = self._shared(split, n, rank, world)
            if rank == 0 and got:
                feature_store.store(self.path, {**entries, **got})
        rest = [s for s in self.missing if s not in got]
        stored = feature_cache.read(self.path, self.device) if rest else {}
        if rest and stored is None:
            raise RuntimeError(f"feature cache {self.path} vanished while the ranks read it")
        done = {**stored, **got}
        return {s: (done[s].x[:n], done[s].y[:n]) for s, n in self.missing.items()}

    def _shared(self, split: str, n: int, rank: int, world: int) -> feature_store.Entry:
        """The first `n` images of `split`: this rank's contiguous shard extracted here, all of
        them gathered from the ranks in order (shards differ by at most one image)."""
        import torch.distributed as dist

        start = time.perf_counter()
        # contiguous shards in rank order; fewer images than ranks: every rank extracts them all
        bounds = [r * n // world for r in range(world + 1)] if n >= world else [0, n]
        lo, hi = bounds[rank : rank + 2] if n >= world else bounds
        log.info(
            "feature extraction (rank %d of %d): %s images %d-%d, %d of %d",
            rank, world, split, lo, hi, hi - lo, n,
        )  # fmt: skip
        x, y = feature_cache.extract(
            self.module, self.pixels, split, self.precision, self.device, self.stop, range(lo, hi)
        )
        self.extracted[split] = hi - lo
        if n >= world:
            sizes = [b - a for a, b in zip(bounds, bounds[1:], strict=False)]
            # gloo has no all_gather for every dtype (bf16); float32 holds fp16/bf16 exactly
            wire = x.float() if dist.get_backend() == "gloo" else x
            xs, ys = _gather(_pad(wire, max(sizes))), _gather(_pad(y, max(sizes)))
            x = torch.cat([p[:k] for p, k in zip(xs, sizes, strict=True)]).to(x.dtype)
            y = torch.cat([p[:k] for p, k in zip(ys, sizes, strict=True)])
        return feature_store.Entry(x, y, time.perf_counter() - start, self._made_on(world))

    def _made_on(self, world: int) -> str:
        # N ranks' wall time: not what one such device would take, so not reused as its cost
        return f"{feature_store.made_on(self.device)} x {world} ranks"


def _pad(t: torch.Tensor, rows: int) -> torch.Tensor:
    if len(t) == rows:
        return t.contiguous()
    return torch.cat([t, t.new_zeros((rows - len(t), *t.shape[1:]))])


def _gather(t: torch.Tensor) -> list[torch.Tensor]:
    import torch.distributed as dist

    out = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(out, t)
    return out
