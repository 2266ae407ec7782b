"""Frozen-feature caching: used only when safe, never stale, same results as recomputing."""

import dataclasses

import torch

from tlbench.training import feature_cache, feature_store
from tlbench.training.cached_features import CachedFeatures
from tlbench.training.run import build_run, train


def test_cached_transfer_matches_recomputed_features_and_hits_the_cache(cfg_factory, tmp_path):
    common = [
        "trainer.max_epochs=2",
        "trainer.precision=32-true",
        "data.image_size=32",
        "test_after_fit=false",
    ]
    first = train(cfg_factory(*common, "strategy.cache_features=auto"))
    assert first.cached_features is True and first.feature_cache.endswith(".pt")
    second = train(cfg_factory(*common, "strategy.cache_features=auto"))
    assert second.feature_cache == first.feature_cache  # the same key: a hit
    assert (first.feature_cache_hit, second.feature_cache_hit) == (False, True)
    assert second.best_val_acc == first.best_val_acc
    # a hit costs what the miss did: each split's extraction time is stored with the features;
    # fitting counts train and val (a run that does not test extracts no test features)
    per_split = first.feature_extraction_seconds
    assert set(per_split) == {"train", "val"} and min(per_split.values()) > 0
    assert second.feature_extraction_seconds == per_split
    fit_cost = per_split["train"] + per_split["val"]
    assert second.fit_seconds >= fit_cost - 0.02  # rounded to 10 ms
    assert sum(per_split.values()) > second.feature_cache_seconds  # loading is cheaper
    plain = train(cfg_factory(*common, "strategy.cache_features=false"))
    assert plain.cached_features is False
    assert abs(plain.best_val_acc - first.best_val_acc) <= 0.02


def test_cache_key_changes_with_data_weights_and_precision(cfg_factory):
    dm, module = build_run(cfg_factory())
    key = feature_cache.cache_key(module, dm, "32-true")
    assert feature_cache.cache_key(module, dm, "bf16-mixed") != key
    dm2, _ = build_run(cfg_factory("data.subset_seed=1"))
    assert feature_cache.cache_key(module, dm2, "32-true") != key
    with torch.no_grad():
        module.net.conv_stem.weight.add_(1e-3)  # another backbone, same name
    assert feature_cache.cache_key(module, dm, "32-true") != key


def test_decide_explains_when_caching_is_unsafe(cfg_factory):
    dm, module = build_run(cfg_factory("data.augment=classic"))
    use, why = feature_cache.decide("auto", module, dm)
    assert not use and "data.augment=classic" in why
    use, why = feature_cache.decide("true", module, dm)
    assert use and "turned off" in why
    dm, module = build_run(cfg_factory("strategy=finetune"))
    use, why = feature_cache.decide("auto", module, dm)
    assert not use and "train" in why


def test_frozen_layers_record_no_autograd_graph(cfg_factory):
    dm, module = build_run(cfg_factory("strategy=transfer", "strategy.cache_features=false"))
    seen = {}
    module.net.blocks.register_forward_hook(lambda m, i, o: seen.update(backbone=o))
    module.net.classifier.register_forward_hook(lambda m, i, o: seen.update(head=o))
    module.train()
    x, y = next(dm.batches("train"))
    loss = module.training_step((x, y), 0)
    assert seen["backbone"].grad_fn is None and not seen["backbone"].requires_grad
    assert seen["head"].grad_fn is not None
    loss.backward()
    assert all(
        p.grad is None for n, p in module.net.named_parameters() if not n.startswith("classifier")
    )


def test_batch_limits_keep_the_images_an_uncached_run_would_see(cfg_factory):
    """`trainer.limit_test_batches=64` with batch 32 means the first 2,048 test images, cached or
    not (cached loaders hold slices of 128 batches; counted naively, 64 slices = everything)."""
    dm, _ = build_run(cfg_factory("data.batch_size=8"))
    x, y = torch.arange(100.0).unsqueeze(1), torch.arange(100)
    features = {"train": (x, y), "val": (x, y), "test": (x, y)}
    cached = CachedFeatures(dm, features, {"val": 0.5, "test": 2, "train": None})
    assert cached.features["test"][1].tolist() == list(range(16))  # 2 batches of 8
    assert len(cached.features["val"][1]) == 6 * 8  # int(0.5 * 13 batches) = 6 batches
    assert len(cached.features["train"][1]) == 100
    assert len(CachedFeatures(dm, features, {"test": 1.0}).features["test"][1]) == 100
    assert len(CachedFeatures(dm, features, {"test": 1}).features["test"][1]) == 8


def test_a_training_batch_limit_turns_caching_off(cfg_factory):
    dm, module = build_run(cfg_factory())
    use, why = feature_cache.decide("auto", module, dm, {"train": 3})
    assert not use and "limit_train_batches=3" in why
    assert feature_cache.decide("auto", module, dm, {"train": 1.0, "test": 64})[0]


def test_a_resumed_cached_run_counts_the_features_once(cfg_factory, tmp_path, monkeypatch):
    """Fit time counts the features' cost (train + val) once per run: a cache hit in a fresh
    run counts it, the second segment of a resumed run does not count it again."""
    common = ["trainer.precision=32-true", "data.image_size=32", "test_after_fit=false"]
    run = tmp_path / "run"
    train(cfg_factory(*common, "trainer.max_epochs=1", f"paths.output_dir={run}"))
    real_load = feature_store.load

    def costly(path, device):  # the stored extraction cost, made unmistakable: 1,000 s a split
        entries = real_load(path, device)
        return {split: dataclasses.replace(e, seconds=1000.0) for split, e in entries.items()}

    monkeypatch.setattr(feature_store, "load", costly)
    resumed = train(cfg_factory(*common, "trainer.max_epochs=2", f"resume={run}"))
    assert resumed.feature_cache_hit and len(resumed.segments) == 2
    assert resumed.segments[1]["fit_seconds"] < 1000  # the load time, not 2,000 s again
    fresh = train(cfg_factory(*common, "trainer.max_epochs=1", f"paths.output_dir={tmp_path}/b"))
    assert fresh.feature_cache_hit and fresh.fit_seconds >= 2000  # train + val
