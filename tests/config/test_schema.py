"""Config keys are declared once: the strategy schema, the paths group, the sweep expansion and the
README's lr_mult example through the real command-line parse."""

from __future__ import annotations

import dataclasses

import pytest
from omegaconf import OmegaConf

from tests.helpers.cli import run_cli
from tlbench import summary_file
from tlbench.config import CONF_DIR, REPO_ROOT, compose, schema
from tlbench.config.preflight import job_overrides, quote_dict_keys, sweep_jobs
from tlbench.errors import TlbenchError
from tlbench.runtime import launch
from tlbench.summary_file import RunSummary
from tlbench.training import strategies

PRESETS = sorted(p.stem for p in (CONF_DIR / "strategy").glob("*.yaml"))
DEFAULTS = dataclasses.asdict(schema.StrategyConfig())


def test_strategy_keys_come_from_the_schema():
    assert set(strategies.KEYS) == set(DEFAULTS) == set(schema.types(schema.StrategyConfig))


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_extends_the_schema_and_writes_its_differences(preset):
    cfg = compose([f"strategy={preset}", "paths.output_dir=/tmp/x"]).strategy
    assert list(cfg) == list(DEFAULTS)  # every key, in the schema's order
    own = OmegaConf.load(CONF_DIR / "strategy" / f"{preset}.yaml")
    assert own.defaults[0] == "/strategy_schema@_here_"
    written = set(own) - {"defaults"}
    assert written <= set(DEFAULTS)  # nothing the schema does not declare
    # Not a copy of the schema: a preset writes its differences (and, with a reason in its
    # comment, a default it depends on), not every key again.
    assert len(written) <= len(DEFAULTS) // 2, sorted(written)


def test_presets_keep_their_values():
    """The values the presets had before the schema (their differences from it)."""
    get = lambda p: compose([f"strategy={p}", "paths.output_dir=/tmp/x"]).strategy  # noqa: E731
    assert get("transfer").head_lr_mult == 10 and get("transfer").trainable == ["head"]
    assert get("finetune").backbone_lr_mult == 0.1 and get("finetune").trainable == ["all"]
    assert get("scratch").pretrained is False and get("scratch").backbone_lr_mult == 1.0
    assert get("partial").last_n_stages == 2 and get("gradual").layer_decay == 0.7
    assert get("lp_ft").schedule[0].epoch == 3 and get("l2sp").l2sp.alpha == 0.01


@pytest.mark.parametrize(
    ("name", "override", "text"),
    [
        ("train", "strategy.last_n_stages=two", "strategy.last_n_stages='two': wrong type (str)"),
        ("train", "strategy.trainable=head", "this key takes a list, even of one item"),
        ("train", "strategy.trainable=null", "strategy.trainable=None: wrong type"),
        ("train", "strategy.schedule=[abc]", "strategy.schedule[0]='abc': each schedule entry"),
        ("predict", "top_k=five", "top_k='five': must be an integer >= 1"),
        ("export", "atol=abc", "atol='abc': must be a number >= 0"),
        ("evaluate", "batch_size=many", "batch_size='many': must be an integer >= 1 or null"),
    ],
)
def test_typed_schemas_refuse_a_wrong_type_while_hydra_composes(name, override, text):
    """Hydra refuses the value (its error names the override); compose_error words
    it with the entry point's own check, as that value is worded anywhere else."""
    from hydra.errors import ConfigCompositionException
    from omegaconf.errors import ValidationError

    from tlbench.config.preflight import compose_error
    from tlbench.inference import evaluate, export, predict
    from tlbench.training.build import validate

    needed = {"train": [], "predict": ["ckpt=x", "input=y"]}.get(name, ["ckpt=x"])
    overrides = [*needed, override]
    with pytest.raises(ConfigCompositionException) as info:
        compose(overrides, config_name=name)
    cause = info.value.__cause__
    assert isinstance(cause, ValidationError) and f"override {override}" in str(info.value)
    check = {"train": validate, "evaluate": evaluate.check, "predict": predict.check,
             "export": export.check}[name]  # fmt: skip
    assert text in str(compose_error(info.value, overrides, f"tlbench.{name}", check))
    # Without a check (a tool composing a config of its own): Hydra's reason, the key in full
    plain = str(compose_error(info.value, overrides, f"tlbench.{name}"))
    assert plain.startswith(override.split("=")[0] + "=") and ": wrong type (" in plain, plain


@pytest.mark.parametrize("name", ["train", "evaluate", "predict", "export"])
def test_paths_is_one_group_used_by_every_command(name):
    cfg = compose(["paths.output_dir=/tmp/x"], config_name=name)
    assert cfg.paths.root == str(REPO_ROOT) and cfg.paths.output_dir == "/tmp/x"
    assert "paths" not in OmegaConf.load(CONF_DIR / f"{name}.yaml")


def test_sweep_jobs_are_the_product_of_the_swept_keys():
    jobs = sweep_jobs(["model=lenet5,mini_vgg", "seed=1,2", "logger=none", "seed=3,4"])
    assert jobs == [
        ["model=lenet5", "seed=3", "logger=none"],
        ["model=lenet5", "seed=4", "logger=none"],
        ["model=mini_vgg", "seed=3", "logger=none"],
        ["model=mini_vgg", "seed=4", "logger=none"],
    ]
    assert job_overrides(["-m", "seed=1,2"]) == [["seed=1"], ["seed=2"]]
    assert job_overrides(["seed=1", "--help"]) is None
    assert sweep_jobs(["seed=range(1,3)", "data=choice(digits)"]) == [
        ["seed=1", "data=digits"],
        ["seed=2", "data=digits"],
    ]


def test_an_experiments_own_grid_is_expanded_as_hydra_launches_it(tmp_path):
    """experiment=compare's `hydra.sweeper.params` (3 strategies x 3 LRs x 3 seeds) are jobs as
    much as a grid typed on the command line, in Hydra's job order (job N writes <sweep dir>/N),
    and a swept key of the command line replaces the experiment's. Once only the command line
    was expanded: one job, so the run-dir checks never saw jobs 1-26."""
    jobs = job_overrides(["-m", "experiment=compare"])
    assert len(jobs) == 27 and jobs[0] == [
        "strategy=transfer", "optimizer.lr=0.0003", "seed=0", "experiment=compare"
    ]  # fmt: skip
    assert jobs[-1][:3] == ["strategy=scratch", "optimizer.lr=0.003", "seed=2"]
    assert {j[2] for j in job_overrides(["-m", "experiment=compare", "seed=4,5"])} == {
        "seed=4", "seed=5"
    }  # fmt: skip
    sweep = tmp_path / "sweep"
    (sweep / "26" / ".hydra").mkdir(parents=True)
    summary_file.write(sweep / "26", RunSummary(status="ok"))  # the last job finished earlier
    argv = ["-m", "experiment=compare", f"hydra.sweep.dir={sweep}"]
    with pytest.raises(TlbenchError, match="already holds completed jobs"):
        launch.check_targets(argv, job_overrides(argv))
    assert sorted(p.name for p in sweep.iterdir()) == ["26"]  # nothing written, nothing locked


def test_readme_lr_mult_example_parses():
    argv = quote_dict_keys(["strategy.lr_mult={features.conv[1-6]*: 0}", "seed=1"])
    cfg = compose(["model=mini_vgg", *argv, "paths.output_dir=/tmp/x"])
    assert OmegaConf.to_container(cfg.strategy.lr_mult) == {"features.conv[1-6]*": 0}
    assert quote_dict_keys(["strategy.lr_mult={conv1: 0}"]) == ["strategy.lr_mult={conv1: 0}"]


def test_readme_lr_mult_example_through_the_command_line():
    readme = (REPO_ROOT / "README.md").read_text()
    assert "strategy.lr_mult='{features.conv[1-6]*: 0}'" in readme
    proc = run_cli(
        "model=mini_vgg",
        "strategy=scratch",
        "strategy.lr_mult={features.conv[1-6]*: 0}",
        "--cfg",
        "job",
    )
    assert proc.returncode == 0, proc.stderr
    assert OmegaConf.create(proc.stdout).strategy.lr_mult == {"features.conv[1-6]*": 0}
