"""Configuration: composing the Hydra configs, the allow-listed instantiate, and the checks that
run on a composed config before any data is read."""

from tlbench.config.app import CONF_DIR, REPO_ROOT, compose, register

__all__ = ["CONF_DIR", "REPO_ROOT", "compose", "register"]
