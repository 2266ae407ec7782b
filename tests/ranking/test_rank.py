"""`python -m tlbench.rank`: candidates, files, the cache, failing early, and signal above noise."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from tests.helpers.checkpoints import train_tiny
from tlbench import cli
from tlbench.config import compose
from tlbench.errors import TlbenchError
from tlbench.ranking import candidates, output
from tlbench.ranking.run import rank, score

TINY = ["data.classes=[0,1,2]", "data.samples_per_class=8", "data.image_size=32"]


def _cfg(tmp_path, *overrides):
    return compose(
        [
            *TINY,
            f"paths.output_dir={tmp_path / 'rank'}",
            f"paths.cache_dir={tmp_path / 'cache'}",
            *overrides,
        ],
        config_name="rank",
    )


def test_rank_writes_the_three_files_best_first_and_reuses_the_feature_cache(tmp_path):
    source = tmp_path / "source"
    train_tiny(source)  # lenet5 trained on digits 0-2: a source with its own 3-way classifier
    cfg = _cfg(tmp_path, f"candidates=[random:lenet5,{source}]")
    result = rank(cfg)
    out = tmp_path / "rank"
    assert {p.name for p in out.iterdir()} >= set(output.FILES)
    stored = json.loads((out / "ranking.json").read_text())
    probes = [c["linear_probe"] for c in stored["candidates"]]
    assert probes == sorted(probes, reverse=True) and stored["recommended"] == result["recommended"]
    by = {c["kind"]: c for c in stored["candidates"]}
    assert by["random"]["feature_dim"] == by["checkpoint"]["feature_dim"] == 84  # LeNet-5's F6
    assert by["random"]["n_train"] == 24 and "leep" not in by["random"]  # no source classifier
    assert by["checkpoint"]["source_classes"] == 3 and by["checkpoint"]["leep"] <= 0
    # the size baseline: LeNet-5's 62,006 parameters less its 10-way head (84 x 10 + 10)
    assert by["random"]["params"] == by["checkpoint"]["params"] == 62_006 - 850
    assert by["random"]["imagenet_top1"] is None and by["checkpoint"]["imagenet_top1"] is None
    assert all(isinstance(v, float) for v in by["checkpoint"]["seconds"].values())
    assert "random:lenet5" in stored["verdict"]  # the control the pretrained source is held to
    rows = list(csv.DictReader((out / "ranking.csv").open()))
    assert [r["candidate"] for r in rows] == [c["candidate"] for c in stored["candidates"]]
    md = (out / "ranking.md").read_text()
    assert "Recommended source: **" in md and "| linear probe val acc |" in md
    # features once: a second ranking reads them from the cache
    again = rank(_cfg(tmp_path, f"candidates=[random:lenet5,{source}]"))
    assert all(c["cache_hit"] for c in again["candidates"])
    assert [c["logme"] for c in again["candidates"]] == [c["logme"] for c in result["candidates"]]
    # splits=all also caches the test split (the file a strategy=transfer run reads): same scores
    full = rank(_cfg(tmp_path, f"candidates=[random:lenet5,{source}]", "splits=all"))
    assert not any(c["cache_hit"] for c in full["candidates"])
    assert [c["logme"] for c in full["candidates"]] == [c["logme"] for c in result["candidates"]]


def test_missing_weights_fail_before_any_feature_with_trainings_message(tmp_path, torch_home):
    cfg = _cfg(tmp_path, "candidates=[random:lenet5,resnet18]")
    with pytest.raises(TlbenchError, match="resnet18-f37072fd.pth") as err:
        rank(cfg)
    assert "strategy=scratch" in str(err.value)
    assert not (tmp_path / "cache").exists() and not (tmp_path / "rank" / "ranking.json").exists()
    with pytest.raises(SystemExit) as code:  # the cli policy: a user error exits with 2
        cli.guarded(rank)(cfg)
    assert code.value.code == 2


@pytest.mark.parametrize(
    "specs,message",
    [
        (["lenet5"], "no pretrained weights of its own"),
        (["random:lenet5", "random:lenet5"], "listed twice"),
        (["/nowhere/run"], "does not exist"),
        ([], "give a list"),
    ],
)
def test_bad_candidates_are_one_paragraph_errors(specs, message):
    with pytest.raises(TlbenchError, match=message):
        candidates.resolve_all(specs)


def test_candidate_kinds():
    pre, rnd = candidates.resolve("efficientnet_lite0"), candidates.resolve("random:mini_vgg")
    assert (pre.kind, pre.pretrained, pre.model["weights"]) == ("pretrained", True, "DEFAULT")
    assert (rnd.kind, rnd.pretrained, rnd.model["weights"], rnd.arch) == (
        "random",
        False,
        None,
        "mini_vgg",
    )
    assert candidates.resolve("timm/convnext_atto").arch == "timm/convnext_atto"


def test_features_that_carry_the_labels_rank_above_noise_on_every_metric():
    rng = np.random.default_rng(0)
    ty, vy = np.arange(60) % 3, np.arange(30) % 3
    centres = rng.normal(size=(3, 16)) * 2
    signal = [centres[y] + rng.normal(size=(len(y), 16)) for y in (ty, vy)]
    noise = [rng.normal(size=(len(y), 16)) for y in (ty, vy)]
    head = (np.eye(3, 16) * 4, np.zeros(3))  # a source classifier that reads the signal
    rows = [
        score(
            {"candidate": name, "kind": "pretrained", "arch": name, "status": "ok"},
            (x[0], ty, x[1], vy),
            head,
        )
        for name, x in (("noise", noise), ("signal", signal))
    ]
    result = output.assemble(rows, {"name": "toy"}, "logme", "32-true", "cpu")
    assert result["recommended"] == "signal"
    assert all(r == 1 for r in result["candidates"][0]["ranks"].values())
    assert set(result["candidates"][0]["ranks"]) == set(output.COLUMNS)


def test_random_controls_are_added_once_per_source_architecture():
    listed = ["efficientnet_lite0", "timm/convnext_atto", "random:efficientnet_lite0"]
    found = candidates.with_controls(candidates.resolve_all(listed))
    assert [c.label for c in found] == [*listed, "random:timm/convnext_atto"]  # lite0's was listed
    added = found[-1]
    assert (added.kind, added.pretrained, added.added, added.model["weights"]) == (
        "random", False, True, None
    )  # fmt: skip
    assert not any(c.added for c in found[:-1])


def test_every_source_is_held_to_its_own_random_init_unless_turned_off(tmp_path):
    source = tmp_path / "source"
    train_tiny(source)  # a lenet5 checkpoint: its control is random:lenet5, at no training cost
    result = rank(_cfg(tmp_path, f"candidates=[{source}]"))
    by = {c["kind"]: c for c in result["candidates"]}
    assert by["random"]["candidate"] == "random:lenet5" and by["random"]["added"] is True
    assert by["random"]["status"] == "ok" and by["random"]["linear_probe"] is not None
    assert by["random"]["params"] == by["checkpoint"]["params"]  # the same architecture
    assert "the same architecture randomly initialised" in result["verdict"]
    assert "| random:lenet5 (added control) |" in (tmp_path / "rank" / "ranking.md").read_text()
    only = rank(_cfg(tmp_path, f"candidates=[{source}]", "random_controls=false"))
    assert [c["kind"] for c in only["candidates"]] == ["checkpoint"]
    assert "add random:lenet5" in only["verdict"]
    with pytest.raises(TlbenchError, match="must be true or false"):
        rank(_cfg(tmp_path / "bad", "candidates=[random:lenet5]", "random_controls=maybe"))
    assert not (tmp_path / "bad").exists()  # refused before any feature or file


@pytest.mark.parametrize(
    "args,expected",
    [
        (["candidates=[nonexist]"], "candidates='nonexist': model='nonexist': unknown model name"),
        (["candidates=[random:lenet5]", "rank_by=foo"], "rank_by='foo': unknown ranking metric"),
        (["candidates=[random:lenet5]", "+seed=1"], r"\+seed=1: tlbench.rank takes no added keys"),
    ],
)
def test_the_command_line_is_refused_before_hydra_writes(tmp_path, args, expected):
    """The checks of rank(cfg) run before Hydra creates the run dir, as for evaluate and the
    others: a misspelt model used to be found inside the job, named as `model=`, after a log
    line about the random control added for it."""
    import re

    from tests.helpers.cli import run_cli

    out = tmp_path / "out"
    done = run_cli(*args, f"hydra.run.dir={out}", module="tlbench.rank")
    assert done.returncode == 2, done.stderr[-2000:]
    message = done.stderr.strip()
    assert message.startswith("Error: ") and "\n" not in message, message
    assert re.search(expected, message), message
    assert not out.exists()
