"""Issue 22: `predict` / `export output=<existing file>` refuse unless `overwrite=true`, and every
output is written beside its target and renamed over it (no half files, no temporaries left)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tlbench.config import REPO_ROOT, compose
from tlbench.errors import TlbenchError
from tlbench.inference.export import export
from tlbench.inference.predict import predict


@pytest.fixture
def image(tmp_path):
    from sklearn.datasets import load_digits

    path = tmp_path / "digit.png"
    Image.fromarray((load_digits().images[0] * 15).astype(np.uint8)).save(path)
    return path


def _predict_cfg(tiny_run, image, out, *extra):
    return compose(
        [
            f"ckpt={tiny_run}",
            f"input={image}",
            f"output={out}",
            "progress_bar=false",
            f"paths.output_dir={out.parent}",
            *extra,
        ],
        config_name="predict",
    )


def _files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_predict_refuses_an_existing_output_and_replaces_it_with_overwrite(
    tiny_run, image, tmp_path
):
    out = tmp_path / "mine.csv"
    out.write_text("someone's notes\n")
    with pytest.raises(TlbenchError) as err:
        predict(_predict_cfg(tiny_run, image, out))
    assert "already exists" in str(err.value) and "overwrite=true" in str(err.value)
    assert out.read_text() == "someone's notes\n"
    predict(_predict_cfg(tiny_run, image, out, "overwrite=true"))
    with out.open() as fh:
        assert [r["file"] for r in csv.DictReader(fh)] == [str(image)]
    assert _files(tmp_path) == ["digit.png", "mine.csv"]  # no temporary left beside it


@pytest.mark.slow  # a subprocess: ~20 s on a busy 2-core machine
def test_predict_on_the_command_line_refuses_before_reading_the_checkpoint(
    tiny_run, image, tmp_path
):
    out = tmp_path / "mine.csv"
    out.write_text("keep\n")
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    done = subprocess.run(
        [sys.executable, "-m", "tlbench.predict", f"ckpt={tiny_run}", f"input={image}", f"output={out}",
         f"hydra.run.dir={tmp_path / 'hydra'}"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "already exists" in done.stderr and "overwrite=true" in done.stderr
    assert out.read_text() == "keep\n" and not (tmp_path / "hydra").exists()


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_export_refuses_an_existing_model_or_sidecar_and_replaces_with_overwrite(
    tiny_run, tmp_path
):
    def cfg(out, *extra):
        args = [f"ckpt={tiny_run}", f"output={out}", f"paths.output_dir={tmp_path}", *extra]
        return compose(args, config_name="export")

    out = tmp_path / "model.pt"
    out.write_bytes(b"a model someone deployed")
    with pytest.raises(TlbenchError, match="already exists"):
        export(cfg(out))
    assert out.read_bytes() == b"a model someone deployed"
    other = tmp_path / "other.pt"
    (tmp_path / "other.json").write_text("{}")  # the sidecar that export would write
    with pytest.raises(TlbenchError, match="other.json already exists"):
        export(cfg(other))
    assert not other.exists()
    export(cfg(out, "overwrite=true"))
    assert out.read_bytes()[:2] == b"PK"  # a TorchScript zip now
    assert _files(tmp_path) == ["model.json", "model.pt", "other.json"]


def test_overwrite_must_be_a_switch(tiny_run, image, tmp_path):
    with pytest.raises(TlbenchError, match="true or false"):
        predict(_predict_cfg(tiny_run, image, tmp_path / "x.csv", "overwrite=yes"))
