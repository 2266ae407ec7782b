"""Using a trained checkpoint: evaluate, predict, export (tlbench.inference.checkpoint/evaluate/predict/export).
Metrics are tested in test_metrics.py, bad input in test_options.py
and test_checkpoint_files.py.

One tiny checkpoint is trained per module (resnet18 fine-tuned from ImageNet-format weights placed
in a private torch hub cache, 7 digit classes, 32 px, 1 epoch). The weights file is deleted right
after training: every command below must work from the checkpoint alone, with no hub weights.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

import tlbench.training.run
from tests.helpers.cli import TINY, run_cli
from tlbench import cli
from tlbench.config import compose
from tlbench.data import transforms
from tlbench.errors import TlbenchError
from tlbench.inference import checkpoint
from tlbench.inference.evaluate import evaluate
from tlbench.inference.export import export
from tlbench.inference.predict import find_images, predict
from tlbench.models import torchvision_source

CLASSES = ["0", "1", "2", "3", "4", "5", "6"]  # 7 > 5, so top-5 accuracy is reported


def _quoted(names):
    return "[" + ",".join(f"'{n}'" for n in names) + "]"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Train once; return the run dir, the in-memory trained module and an empty TORCH_HOME."""
    root = tmp_path_factory.mktemp("use")
    home, empty_home = root / "torch_home", root / "empty_torch_home"
    (home / "hub" / "checkpoints").mkdir(parents=True)
    (empty_home / "hub" / "checkpoints").mkdir(parents=True)
    captured = {}
    original = tlbench.training.run.build_run

    def spy(cfg):  # keep a handle on the module that train() trains
        datamodule, module = original(cfg)
        captured["module"] = module
        return datamodule, module

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(home))
        mp.setattr(torch.hub, "_hub_dir", None)
        weights = torchvision_source.resolve_weights("resnet18", "DEFAULT")
        weights_file = torchvision_source.cache_file(weights)
        torch.save(torchvision_source.build("resnet18", None).state_dict(), weights_file)
        mp.setattr(tlbench.training.run, "build_run", spy)
        run_dir = root / "run"
        cfg = compose(
            [
                *TINY,
                "model=resnet18",
                "strategy=finetune",
                f"data.classes={_quoted(CLASSES)}",
                "test_after_fit=false",
                f"paths.output_dir={run_dir}",
            ]
        )
        summary = tlbench.training.run.train(cfg)
        (run_dir / ".hydra").mkdir()
        OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")  # as `python -m tlbench` writes it
        assert summary.status == "ok" and summary.weights.startswith("torchvision:")
        weights_file.unlink()  # from here on, nothing may need the pretrained weights
        mp.setenv("TORCH_HOME", str(empty_home))
        yield {
            "run_dir": run_dir,
            "module": captured["module"].float().eval().cpu(),
            "summary": summary,
            "env": {"TORCH_HOME": str(empty_home)},
        }


def run_module(module: str, *args: str, env: dict):
    return run_cli(*args, module=module, env=env)


def _inputs(side: int, n: int = 5, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, side, side, generator=torch.Generator().manual_seed(seed))


# -- the checkpoint ------------------------------------------------------------------------------
def test_checkpoint_alone_rebuilds_the_trained_model(trained):
    loaded = checkpoint.load(trained["run_dir"])  # a run dir means its checkpoints/best.ckpt
    assert loaded.path == trained["run_dir"] / "checkpoints" / "best.ckpt"
    assert loaded.class_names == CLASSES
    assert loaded.preprocess.to_dict() == trained["summary"].preprocess
    assert loaded.preprocess.crop_size == 32
    hp = loaded.module.hparams
    assert hp["model"]["name"] == "resnet18" and hp["strategy"]["name"] == "finetune"
    # Built without the (deleted) pretrained weights: the stored weights are the only source.
    assert loaded.module.weights_origin == "random"
    assert not loaded.module.training
    x = _inputs(32)
    with torch.no_grad():
        expected, got = trained["module"](x), loaded.module(x)
    # 1 epoch: best.ckpt is the final state of the in-memory module.
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_missing_or_foreign_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(TlbenchError, match=r"ckpt='.*nope.ckpt': no such file"):
        checkpoint.load(tmp_path / "nope.ckpt")
    with pytest.raises(TlbenchError, match="no checkpoints/best.ckpt"):
        checkpoint.load(tmp_path)  # a directory that is not a run dir
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(TlbenchError, match="not a PyTorch checkpoint"):
        checkpoint.load(junk)  # the other broken files: tests/inference/test_checkpoint_files.py


def test_missing_checkpoint_on_the_command_line_exits_2_without_traceback(trained, tmp_path):
    result = run_module(
        "tlbench.evaluate",
        f"ckpt={tmp_path / 'missing.ckpt'}",
        f"hydra.run.dir={tmp_path / 'out'}",
        env=trained["env"],
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    message = result.stderr.strip()
    assert message.startswith("Error: ckpt=") and "no such file or directory" in message
    assert "\n" not in message  # one paragraph


@pytest.mark.parametrize("command", [predict, export])
def test_other_commands_share_the_error_policy(command, tmp_path, capsys):
    cfg = compose(
        [f"ckpt={tmp_path / 'missing.ckpt'}", f"paths.output_dir={tmp_path}", f"input={tmp_path}"]
        if command is predict
        else [f"ckpt={tmp_path / 'missing.ckpt'}", f"paths.output_dir={tmp_path}"],
        config_name=command.__name__,
    )
    with pytest.raises(SystemExit) as info:
        cli.guarded(command)(cfg)
    assert info.value.code == 2
    assert "ckpt=" in capsys.readouterr().err


# -- evaluate ------------------------------------------------------------------------------------
def _evaluate_in_process(run_dir, out_dir, *overrides):
    cfg = compose(
        [f"ckpt={run_dir}", f"paths.output_dir={out_dir}", "precision=32-true", *overrides],
        config_name="evaluate",
    )
    return evaluate(cfg)


def test_evaluate_command_writes_metrics_and_confusion_matrix(trained, tmp_path):
    out = tmp_path / "eval"
    # The data lists the checkpoint's classes in reverse order: labels must be remapped.
    result = run_module(
        "tlbench.evaluate",
        f"ckpt={trained['run_dir']}",
        "data=digits",
        f"data.classes={_quoted(CLASSES[::-1])}",
        "data.image_size=64",  # ignored: the checkpoint's preprocessing (32 px) wins
        "precision=32-true",
        f"hydra.run.dir={out}",
        env=trained["env"],
    )
    assert result.returncode == 0, result.stderr
    assert "accuracy" in result.stdout and "macro-F1" in result.stdout
    r = json.loads((out / "evaluation.json").read_text())
    for key in ("loss", "accuracy", "top5_accuracy", "macro_f1", "per_class", "confusion_matrix",
                "class_names", "preprocess", "split", "num_images"):  # fmt: skip
        assert key in r, key
    assert r["split"] == "test" and r["class_names"] == CLASSES
    assert r["preprocess"]["crop_size"] == 32
    cm = np.array(r["confusion_matrix"])
    assert cm.shape == (7, 7) and cm.sum() == r["num_images"] > 0
    assert r["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert 0 <= r["accuracy"] <= r["top5_accuracy"] <= 1
    assert set(r["per_class"]) == set(CLASSES)
    assert all(set(v) == {"precision", "recall", "f1", "support"} for v in r["per_class"].values())
    png = out / "confusion_matrix.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    assert matplotlib.image.imread(png).shape[0] > 300

    # Same data in the checkpoint's own order, in process: identical results, so the remap is right.
    same = _evaluate_in_process(
        trained["run_dir"], tmp_path / "eval2", "data=digits", f"data.classes={_quoted(CLASSES)}"
    )
    assert same["confusion_matrix"] == r["confusion_matrix"]
    assert same["loss"] == pytest.approx(r["loss"], rel=1e-5)

    # And it is what the trained module computes on that split (its own preprocessing, 32 px).
    from tlbench.data.digits import DigitsDataModule

    dm = DigitsDataModule(classes=CLASSES, preprocess=r["preprocess"])
    dm.setup()
    # The pixels of training's own eval path (batched transforms for in-memory data), fp32.
    x, y = (torch.cat(t) for t in zip(*dm.batches("test", train=False), strict=True))
    with torch.no_grad():
        pred = trained["module"](x).argmax(1)
    assert r["accuracy"] == pytest.approx(float((pred == y).float().mean()))


def test_evaluate_other_splits_and_wrong_classes(trained, tmp_path):
    val = _evaluate_in_process(
        trained["run_dir"],
        tmp_path / "val",
        "data=digits",
        f"data.classes={_quoted(CLASSES)}",
        "split=val",
        f"precision={trained['summary'].precision}",  # the precision training validated with
        "data.batch_size=16",  # and its batches
    )
    assert val["split"] == "val" and (tmp_path / "val" / "evaluation.json").is_file()
    # The val/acc that training logged; a 1-epoch model's close logits may round differently.
    assert val["accuracy"] == pytest.approx(
        trained["summary"].final_val_acc, abs=1.01 / val["num_images"]
    ), (val["accuracy"], trained["summary"].final_val_acc, val["num_images"])
    with pytest.raises(TlbenchError) as info:  # '6' missing, '7' extra
        _evaluate_in_process(
            trained["run_dir"],
            tmp_path / "bad",
            "data=digits",
            f"data.classes={_quoted([*CLASSES[:6], '7'])}",
        )
    assert "lacks [6]" in str(info.value) and "extra classes [7]" in str(info.value)
    with pytest.raises(TlbenchError, match="extra classes \\[7, 8, 9\\].*leave out data="):
        _evaluate_in_process(trained["run_dir"], tmp_path / "all", "data=digits")
    with pytest.raises(TlbenchError, match="unknown split"):
        _evaluate_in_process(trained["run_dir"], tmp_path / "x", "split=holdout")


def test_evaluate_without_data_uses_the_runs_own(trained, tmp_path):
    """No data=: the data of the run that wrote the checkpoint (.hydra/config.yaml), so its test
    split, classes and all; before, it was digits' 10 classes, refused for a 7-class run."""
    own = _evaluate_in_process(trained["run_dir"], tmp_path / "own")
    given = _evaluate_in_process(
        trained["run_dir"], tmp_path / "given", "data=digits", f"data.classes={_quoted(CLASSES)}"
    )
    assert own["num_images"] == given["num_images"] > 0 and own["data"] == "digits"
    assert own["confusion_matrix"] == given["confusion_matrix"]
    # A checkpoint without its run dir's record, and a record naming a class not allowed.
    lone = tmp_path / "lone" / "model.ckpt"
    lone.parent.mkdir()
    lone.symlink_to(trained["run_dir"] / "checkpoints" / "best.ckpt")
    with pytest.raises(TlbenchError, match="no data= is given.*Fix: choose the data"):
        _evaluate_in_process(lone, tmp_path / "x")
    handed = tmp_path / "handed"
    (handed / ".hydra").mkdir(parents=True)
    (handed / "best.ckpt").symlink_to(lone)
    saved = OmegaConf.load(trained["run_dir"] / ".hydra" / "config.yaml")
    saved.data._target_ = "os.system"
    OmegaConf.save(saved, handed / ".hydra" / "config.yaml")
    with pytest.raises(TlbenchError, match="not in the allow-list"):
        _evaluate_in_process(handed / "best.ckpt", tmp_path / "y")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    # And on the command line, a data.* key without data= says what to do.
    done = run_module("tlbench.evaluate", f"ckpt={trained['run_dir']}", "data.batch_size=8",
                      f"hydra.run.dir={tmp_path / 'z'}", env=trained["env"])  # fmt: skip
    assert done.returncode == 2 and "no data config is chosen" in done.stderr, done.stderr
    assert "data=<name> data.batch_size=8" in done.stderr and not (tmp_path / "z").exists()


# -- predict -------------------------------------------------------------------------------------
@pytest.fixture
def image_folder(tmp_path):
    """Real digit images in the formats users have: nested folders, odd modes and extensions."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    root = tmp_path / "images"
    (root / "nested" / "deeper").mkdir(parents=True)
    gray = [Image.fromarray((digits.images[i] * 15).astype(np.uint8)) for i in range(6)]
    gray[0].save(root / "a_gray.png")
    gray[1].convert("RGB").save(root / "b_rgb.JPG")  # upper-case extension
    gray[2].convert("RGBA").save(root / "nested" / "c_rgba.png")
    gray[3].convert("CMYK").save(root / "nested" / "d_cmyk.jpeg")
    gray[4].convert("P").save(root / "nested" / "deeper" / "e_palette.GIF")
    gray[5].save(root / "nested" / "f.bmp")
    (root / "nested" / "g_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (root / "readme.txt").write_text("not an image, not scanned")
    return root


def test_find_images_scans_recursively_case_insensitively(image_folder, tmp_path):
    files = find_images(image_folder)
    assert len(files) == 7 and all(f.suffix.lower() != ".txt" for f in files)
    assert find_images(image_folder / "a_gray.png") == [image_folder / "a_gray.png"]
    with pytest.raises(TlbenchError, match="no such file"):
        find_images(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TlbenchError, match="no image files"):
        find_images(tmp_path / "empty")


def test_predict_command_writes_a_csv_with_errors_for_unreadable_files(
    trained, image_folder, tmp_path
):
    out = tmp_path / "pred"
    result = run_module(
        "tlbench.predict",
        f"ckpt={trained['run_dir'] / 'checkpoints' / 'last.ckpt'}",
        f"input={image_folder}",
        "batch_size=2",  # several batches, one with the broken file in it
        "top_k=3",
        "precision=32-true",
        f"hydra.run.dir={out}",
        env=trained["env"],
    )
    assert result.returncode == 0, result.stderr
    assert "100%" in result.stderr and "7/7" in result.stderr  # the tqdm bar
    with (out / "predictions.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["file"] for r in rows] == [str(f) for f in find_images(image_folder)]
    assert list(rows[0]) == [
        "file", "predicted_class", "probability", "top1_class", "top1_prob", "top2_class",
        "top2_prob", "top3_class", "top3_prob", "error",
    ]  # fmt: skip
    broken = [r for r in rows if r["file"].endswith("g_broken.png")]
    assert len(broken) == 1 and broken[0]["error"] and broken[0]["predicted_class"] == ""
    good = [r for r in rows if not r["error"]]
    assert len(good) == 6
    loaded = checkpoint.load(trained["run_dir"])
    tf = transforms.build(loaded.preprocess, "none", train=False)
    for r in good:
        assert r["predicted_class"] == r["top1_class"] and r["predicted_class"] in CLASSES
        probs = [float(r[f"top{j}_prob"]) for j in (1, 2, 3)]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-5
        # Same numbers as the trained module on that image with the checkpoint's preprocessing.
        from torchvision.transforms.v2.functional import pil_to_tensor

        image = pil_to_tensor(Image.open(r["file"]).convert("RGB"))
        with torch.no_grad():
            p = torch.softmax(trained["module"](tf(image)[None]), 1)[0]
        assert CLASSES[int(p.argmax())] == r["predicted_class"]
        assert float(p.max()) == pytest.approx(float(r["probability"]), abs=1e-5)


def test_predict_single_file_in_process(trained, image_folder, tmp_path):
    cfg = compose(
        [
            f"ckpt={trained['run_dir']}",
            f"input={image_folder / 'nested' / 'd_cmyk.jpeg'}",
            f"output={tmp_path / 'one.csv'}",
            "top_k=50",  # capped at the 7 classes
            "progress_bar=false",
            f"paths.output_dir={tmp_path}",
        ],
        config_name="predict",
    )
    path = predict(cfg)
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1 and "top7_prob" in rows[0] and "top8_prob" not in rows[0]
    assert sum(float(rows[0][f"top{j}_prob"]) for j in range(1, 8)) == pytest.approx(1, abs=1e-3)


# -- export --------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_export_command_matches_the_checkpoint(trained, tmp_path, fmt):
    out = tmp_path / "export"
    args = [f"ckpt={trained['run_dir']}", f"format={fmt}"]
    if fmt == "onnx":  # from the command line, as a user would
        result = run_module("tlbench.export", *args, f"hydra.run.dir={out}", env=trained["env"])
        assert result.returncode == 0, result.stderr
        assert "max |diff| vs checkpoint" in result.stdout
    else:  # in process (a subprocess costs ~5 s CPU; the CLI wrapper is the one tested above)
        export(compose([*args, f"paths.output_dir={out}"], config_name="export"))
    model_file = out / ("model.pt" if fmt == "torchscript" else "model.onnx")
    sidecar = json.loads((out / "model.json").read_text())
    assert sidecar["class_names"] == CLASSES and sidecar["format"] == fmt
    assert sidecar["preprocess"] == trained["summary"].preprocess
    assert sidecar["input"]["shape"] == ["batch", 3, 32, 32]
    assert sidecar["check"]["max_abs_diff"] <= 1e-4
    x = _inputs(32, n=5, seed=7)  # a batch size the export never saw
    with torch.no_grad():
        expected = trained["module"](x)
    if fmt == "torchscript":
        got = torch.jit.load(str(model_file)).eval()(x)
    else:
        import onnxruntime as ort

        session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
        got = torch.from_numpy(session.run(["logits"], {"input": x.numpy()})[0])
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-3)


def test_export_legacy_onnx_exporter_and_bad_format(trained, tmp_path):
    cfg = compose(
        [
            f"ckpt={trained['run_dir']}",
            "format=onnx",
            "onnx_exporter=legacy",
            f"paths.output_dir={tmp_path}",
        ],
        config_name="export",
    )
    path = export(cfg)
    assert json.loads(path.with_suffix(".json").read_text())["onnx_exporter"] == "legacy"
    bad = compose([f"ckpt={trained['run_dir']}", "format=tflite", f"paths.output_dir={tmp_path}"],
                  config_name="export")  # fmt: skip
    with pytest.raises(TlbenchError, match="unknown export format"):
        export(bad)


def test_a_class_mismatch_says_how_to_evaluate_on_the_runs_own_data():
    """`tlbench.evaluate ckpt=<run> data=digits` of a model trained on other classes: the fix
    says that without data= the run's own data is used (when its run dir records it)."""
    from tlbench.inference.evaluate import class_mapping

    for own, hint in ((True, "; or leave out data= to evaluate it on the data it was trained on."),
                      (False, "when it has more.")):  # fmt: skip
        with pytest.raises(TlbenchError) as info:
            class_mapping([str(d) for d in range(10)], ["cat", "dog"], "digits", leave_out_data=own)
        assert str(info.value).endswith(hint)
    assert class_mapping(["dog", "cat"], ["cat", "dog"], "pets").tolist() == [1, 0]
