from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.helpers.cli import run_cli
from tests.helpers.configs import train_groups
from tlbench.config import CONF_DIR, compose
from tlbench.errors import TlbenchError
from tlbench.models import registry

GROUPS = train_groups()  # conf/train.yaml's defaults list, experiment last
BASE = compose(["paths.output_dir=/tmp/x"])  # the defaults, for what a preset changes


def test_default_config_composes_every_group():
    cfg = compose(["paths.output_dir=/tmp/x"])
    for group in GROUPS[:-1]:  # experiment is null by default
        assert group in cfg, group
    assert cfg.data._target_.endswith("DigitsDataModule")
    assert cfg.model.name == "efficientnet_lite0"
    assert cfg.strategy.name == "transfer"
    hydra_cfg = compose(["paths.output_dir=/tmp/x"], return_hydra_config=True).hydra
    assert hydra_cfg.job.chdir is False
    assert hydra_cfg.run.dir.startswith("outputs/runs/")
    assert hydra_cfg.sweep.dir.startswith("outputs/multiruns/")


@pytest.mark.parametrize(
    "group,option",
    [(g, p.stem) for g in GROUPS for p in sorted((CONF_DIR / g).glob("*.yaml"))],
)
def test_every_config_file_composes(group, option):
    cfg = compose([f"{group}={option}", "paths.output_dir=/tmp/x"])
    resolved = OmegaConf.to_container(cfg, resolve=True)  # raises if an interpolation is broken
    if group == "experiment":  # `# @package _global_`: a preset changes the composed config
        assert resolved != OmegaConf.to_container(BASE, resolve=True), option
    elif option == "none":  # scheduler=none, logger=none: the group is switched off
        assert not resolved.get(group), resolved.get(group)
    else:
        assert resolved[group], f"{group}={option} composed to an empty group"


@pytest.mark.parametrize("name", ["resnet18", "vgg16", "alexnet", "vit_b_16", "squeezenet1_0"])
def test_any_torchvision_model_is_a_config_choice(name):
    cfg = compose([f"model={name}", "paths.output_dir=/tmp/x"])
    assert cfg.model.name == name and cfg.model.source == "torchvision"
    registry.validate(cfg.model)


def test_timm_models_are_choices_too():
    cfg = compose(["model=timm/convnext_atto", "paths.output_dir=/tmp/x"])
    assert (cfg.model.name, cfg.model.source) == ("convnext_atto", "timm")


def test_model_files_and_generated_nodes_share_keys():
    generated = set(compose(["model=resnet18", "paths.output_dir=/tmp/x"]).model)
    for path in (CONF_DIR / "model").glob("*.yaml"):
        assert set(OmegaConf.load(path)) == generated, path


def test_unknown_model_name_is_a_hydra_error_listing_choices():
    with pytest.raises(Exception, match="resnet18"):
        compose(["model=resnet19", "paths.output_dir=/tmp/x"])


def test_registry_validate_suggests_close_names():
    cfg = compose(["model=resnet18", "paths.output_dir=/tmp/x"])
    cfg.model.name = "resnet19"
    with pytest.raises(TlbenchError, match=r"model='resnet19'.*resnet18"):
        registry.validate(cfg.model)


def test_strategy_files_say_they_are_not_lightning_strategies():
    for path in (CONF_DIR / "strategy").glob("*.yaml"):
        assert "not Lightning's `trainer.strategy`" in Path(path).read_text(), path


def test_every_config_field_is_commented():
    """Convention: every field carries a one-line comment (except _target_/_partial_ and section
    names). The lines of a block of text (`key: |`, --help's) are text, not fields."""
    for path in CONF_DIR.rglob("*.yaml"):
        block = None  # the indentation of the `key: |` line whose text is being read
        for line in path.read_text().splitlines():
            stripped = line.strip()
            indent = len(line) - len(line.lstrip())
            if block is not None and (not stripped or indent > block):
                continue
            block = indent if stripped.split("#")[0].rstrip().endswith(": |") else None
            if (
                not stripped
                or stripped.startswith(("#", "-", "_target_", "_partial_"))
                or stripped.endswith(":")
            ):
                continue
            assert "#" in line, f"{path.relative_to(CONF_DIR)}: `{stripped}` has no comment"


@pytest.mark.parametrize("module", ["tlbench", "tlbench.evaluate", "tlbench.predict"])
def test_help_names_the_command_and_shows_examples(module):
    """`--help` was Hydra's "cli is powered by Hydra" (the name of the file that calls Hydra)."""
    done = run_cli("--help", module=module, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"usage: python -m {module} [key=value ...]\n")
    assert f"  python -m {module} " in done.stdout and "powered by Hydra" not in done.stdout
    groups = done.stdout.split("== The config: set any key with key=value ==")[0]
    assert "schema" not in groups  # the typed schemas are no group to choose
    # predict takes no config group: it listed training's (data, model, strategy, ...)
    takes_groups = module != "tlbench.predict"
    assert ("== Config groups (group=option) ==" in groups) == takes_groups
    assert ("strategy: finetune" in groups) == takes_groups
