#!/usr/bin/env bash
# The Python packages tlbench needs that the lent GPU machine's image lacks (hydra-core, omegaconf
# and omegaconf's parser runtime antlr4), as wheels in an ignored folder (default wheels/), for
# bench/gpu_acceptance.py: its docstring has the `run` command that installs them there (carry
# ["wheels"]; that machine reaches no package index). The versions are the ones this checkout's
# .venv runs, so the GPU run uses what the test suite ran with.
#   bench/gpu_wheels.sh [folder]        (make gpu-wheels)
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-wheels}
py=${PYTHON:-.venv/bin/python}
version() { "$py" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$1"; }
mkdir -p "$dest"
rm -f "$dest"/*.whl  # one version of each: two of one package stop the install there
# Pure-Python wheels on PyPI: the GPU image's Python (3.12) takes them as they are.
"$py" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 -d "$dest" \
    "hydra-core==$(version hydra-core)" "omegaconf==$(version omegaconf)"
# antlr4-python3-runtime is published as a source archive only: build its (pure-Python) wheel
# here, since the GPU machine cannot fetch the build tools.
"$py" -m pip wheel --quiet --no-deps -w "$dest" \
    "antlr4-python3-runtime==$(version antlr4-python3-runtime)"
ls -l "$dest"/*.whl
