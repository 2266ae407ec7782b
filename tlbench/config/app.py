"""Hydra plumbing: where the configs live, resolvers, and `model=<any name>`.

`ModelConfigSource`, a Hydra config source (`hydra.searchpath: [tlbench://models]` in
conf/train.yaml), serves every torchvision model and every `model=timm/<name>` that has no file
in `conf/model/`, and `strategy=surgical_<i>` for any stage i.
Why: docs/architecture.md, "Configuration".
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.object_type import ObjectType
from hydra.plugins.config_source import ConfigLoadError, ConfigResult, ConfigSource
from omegaconf import OmegaConf

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # tlbench/
REPO_ROOT = PACKAGE_DIR.parent  # the one definition of the repository root
CONF_DIR = REPO_ROOT / "conf"


SURGICAL = "surgical_"  # strategy=surgical_<i>: the head plus stage i of the family


def surgical_node(name: str) -> dict | None:
    """`strategy=surgical_<i>`: conf/strategy/finetune.yaml with only the head and stage i
    (tlbench.models.stages, 0 = input side) trained; None when <i> is not an integer."""
    index = name[len(SURGICAL) :]
    if not (name.startswith(SURGICAL) and index.isdigit()):
        return None
    node = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "strategy" / "finetune.yaml"))
    return {**node, "name": name, "trainable": ["head", f"stage:{int(index)}"]}


def model_node(name: str, source: str) -> dict:
    """The config of a model no file describes; keys match conf/model/*.yaml."""
    return {"name": name, "source": source, "weights": "DEFAULT", "small_input": False}


class ModelConfigSource(ConfigSource):
    """Serves `model/<torchvision name>`, `model/timm/<timm name>` and `strategy/surgical_<i>`."""

    @staticmethod
    def scheme() -> str:
        return "tlbench"

    def __init__(self, provider: str, path: str) -> None:
        super().__init__(provider=provider, path=path)

    @staticmethod
    def _strip(config_path: str) -> str:
        return config_path[: -len(".yaml")] if config_path.endswith(".yaml") else config_path

    def _lookup(self, config_path: str) -> dict | None:
        parts = self._strip(config_path).split("/")
        if len(parts) == 2 and parts[0] == "strategy":
            return surgical_node(parts[1])
        if len(parts) == 2 and parts[0] == "model":
            from tlbench.models.torchvision_source import names

            return model_node(parts[1], "torchvision") if parts[1] in names() else None
        if len(parts) == 3 and parts[:2] == ["model", "timm"]:
            import timm

            return model_node(parts[2], "timm") if timm.is_model(parts[2]) else None
        return None

    def load_config(self, config_path: str) -> ConfigResult:
        node = self._lookup(config_path)
        if node is None:
            raise ConfigLoadError(f"tlbench has no built-in config {config_path}")
        return ConfigResult(
            config=OmegaConf.create(node),
            path=f"{self.scheme()}://{self.path}",
            provider=self.provider,
            header={"package": None},
        )

    def available(self) -> bool:
        return True

    def is_group(self, config_path: str) -> bool:
        return self._strip(config_path) in ("", "model", "model/timm", "strategy")

    def is_config(self, config_path: str) -> bool:
        return self._lookup(config_path) is not None

    def list(self, config_path: str, results_filter: ObjectType | None) -> list[str]:
        groups, configs = [], []
        if config_path == "":
            groups = ["model"]
        elif config_path == "model":
            from tlbench.models.torchvision_source import names

            groups, configs = ["timm"], list(names())
        want_groups = results_filter in (None, ObjectType.GROUP)
        want_configs = results_filter in (None, ObjectType.CONFIG)
        return sorted((groups if want_groups else []) + (configs if want_configs else []))


def register() -> None:
    """Idempotent: the config source, the schemas and the `${tlbench_root:}` resolver."""
    from hydra.core.plugins import Plugins

    from tlbench.config import schema

    # Hydra's documented way to add a plugin by hand; a ConfigSource registers its scheme.
    Plugins.instance().register(ModelConfigSource)
    schema.register()
    if not OmegaConf.has_resolver("tlbench_root"):
        OmegaConf.register_new_resolver("tlbench_root", lambda: str(REPO_ROOT))
    if not OmegaConf.has_resolver("tlbench_run_name"):  # a sweep job's TensorBoard run name
        from tlbench.config.overrides import tensorboard_version

        OmegaConf.register_new_resolver("tlbench_run_name", tensorboard_version)
    if not OmegaConf.has_resolver("tlbench_unless_skipped"):  # skip_completed: Hydra writes nothing
        from tlbench.config.runtime import unless_skipped

        OmegaConf.register_new_resolver("tlbench_unless_skipped", unless_skipped)


def compose(
    overrides: list[str] | None = None,
    config_name: str = "train",
    return_hydra_config: bool = False,
):
    """Compose the real configs (as `python -m tlbench` would), for tests, notebooks and tools."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(
            config_name=config_name,
            overrides=overrides or [],
            return_hydra_config=return_hydra_config,
        )
