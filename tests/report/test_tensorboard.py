"""TensorBoard compares what it claims: a sweep's runs are named for what differs, and the
HParams experiment summary (read back from the event files) marks the swept keys, `strategy`
and each optimizer group's effective LR as `differs`, which TensorBoard shows first."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from tests.helpers.cli import run_cli
from tlbench.config.overrides import MULTIRUN_YAML, swept_keys, tensorboard_version
from tlbench.summary_file import RunSummary

SWEEP = [
    "--multirun",
    "model=lenet5",
    "strategy=finetune,scratch",
    "optimizer.lr=0.002",  # given once: constant, so not a compared column
    "data.samples_per_class=3",
    "data.image_size=32",
    "trainer.max_epochs=1",
    "trainer.limit_val_batches=1",
    "trainer.num_sanity_val_steps=0",
    "test_after_fit=false",
    "callbacks.images.every_n_epochs=0",
    "callbacks.images.inputs_grid=false",
    "hydra.callbacks.report.enabled=false",
    "trainer.enable_progress_bar=false",  # neutral: not in the run names
]


def experiment(log_dir):
    acc = EventAccumulator(str(log_dir), size_guidance={"tensors": 0})
    acc.Reload()
    content = acc.PluginTagToContent("hparams")
    exp = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    return exp, start.session_start_info


@pytest.mark.slow  # 10-40 s of subprocesses; make test-full runs it
def test_sweep_runs_are_named_and_hparams_open_on_the_compared_columns(tmp_path):
    sweep = tmp_path / "sweep"
    res = run_cli(*SWEEP, f"hydra.sweep.dir={sweep}")
    assert res.returncode == 0, res.stderr[-3000:]
    names = {p.parent.parent.name: p.name for p in sweep.glob("*/tensorboard/*") if p.is_dir()}
    assert names == {"0": "finetune", "1": "scratch"}  # only what differs, short
    assert f"tensorboard --logdir {sweep}\n" in res.stdout  # the sweep dir itself

    for job, strategy in (("0", "finetune"), ("1", "scratch")):
        exp, session = experiment(sweep / job / "tensorboard" / names[job])
        values = session.hparams
        assert session.group_name == f"{job}/{strategy}"  # the Trial ID column
        differs = {h.name for h in exp.hparam_infos if h.differs}
        assert differs == {"strategy", "lr/head", "lr/backbone"}
        # TensorBoard's order (differs first, then by name) and its five ticked columns
        order = sorted(exp.hparam_infos, key=lambda h: (not h.differs, h.name))
        assert [h.name for h in order[:3]] == ["lr/backbone", "lr/head", "strategy"]
        assert values["strategy"].string_value == strategy
        cfg = OmegaConf.load(sweep / job / ".hydra" / "config.yaml")
        assert values["lr"].number_value == pytest.approx(0.002)
        head = 0.002 * cfg.strategy.get("head_lr_mult", 1.0)
        backbone = 0.002 * cfg.strategy.get("backbone_lr_mult", 1.0)
        assert values["lr/head"].number_value == pytest.approx(head)
        assert values["lr/backbone"].number_value == pytest.approx(backbone)
        tags = {m.name.tag for m in exp.metric_infos}
        assert "summary/best_val_acc" in tags and "summary/test_acc" not in tags


def test_swept_keys_come_from_the_sweep_record(tmp_path):
    """multirun.yaml's command-line sweeps and hydra.sweeper.params; seeds count, logging not."""
    from tlbench.training.hparams import columns

    sweep = tmp_path / "sweep"
    (sweep / "4").mkdir(parents=True)
    record = {
        "hydra": {
            "overrides": {
                "task": ["strategy=transfer,finetune", "data=digits", "logger=none,tensorboard"]
            },
            "sweeper": {"params": {"optimizer.lr": "3e-4,1e-3", "seed": "0,1,2"}},
        }
    }
    OmegaConf.save(OmegaConf.create(record), sweep / MULTIRUN_YAML)
    keys = swept_keys(sweep / "4", [])
    assert keys == ["strategy", "optimizer.lr", "seed"]
    job = ["strategy=finetune", "optimizer.lr=1e-3", "seed=2", "strategy.backbone_lr_mult=0.1"]
    cfg = OmegaConf.create({"data": {"augment": True}})
    summary = RunSummary(strategy="finetune", lr=1e-3, seed=2)
    hp, differs = columns(
        cfg, summary, job, [*keys, "strategy.backbone_lr_mult"], {"lr/head": 1e-2}
    )
    assert differs == {"strategy", "lr", "seed", "strategy.backbone_lr_mult", "lr/head"}
    assert hp["strategy.backbone_lr_mult"] == pytest.approx(0.1) and hp["lr/head"] == 1e-2
    # a single run (no multirun.yaml beside it): its own experiment overrides
    assert swept_keys(tmp_path / "run", ["strategy=scratch", "logger=none"]) == ["strategy"]
    assert tensorboard_version(tmp_path / "run") == ""  # single runs keep <run>/tensorboard/


def test_an_unreadable_sweep_record_falls_back_to_the_jobs_own_overrides(tmp_path):
    (tmp_path / "1").mkdir()
    (tmp_path / MULTIRUN_YAML).write_text("hydra: [unclosed\n")
    assert swept_keys(tmp_path / "1", ["strategy=scratch", "seed=3", "logger=none"]) == [
        "strategy",
        "seed",
    ]
