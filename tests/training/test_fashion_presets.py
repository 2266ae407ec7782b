"""The Fashion-MNIST showcase presets compose and run, on tiny idx fixtures (never the Debian files)."""

from pathlib import Path

from tests.helpers.datasets import write_mnist
from tlbench.config import compose
from tlbench.training.run import train

FAST = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=1",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "logger=none",
    "callbacks.images=null",
]


def preset(tmp_path: Path, name: str, *overrides: str, run: str = "run", hydra: bool = False):
    """The composed preset on the fixture (with the `hydra` node when asked: its sweep params)."""
    root = tmp_path / "fmnist"
    if not root.exists():
        write_mnist(root, folder="FashionMNIST", n=400, n_test=20)  # 40 per class
    return compose(
        [
            f"experiment={name}",
            f"data.root={root}",
            "data.val_fraction=0.25",  # the fixture is tiny: 10 validation images per class
            f"paths.output_dir={tmp_path / run}",
            f"paths.cache_dir={tmp_path / 'cache'}",
            *overrides,
        ],
        return_hydra_config=hydra,
    )


def test_budgets_preset_sweeps_strategies_budgets_lrs_and_seeds(tmp_path):
    cfg = preset(tmp_path, "fashion_mnist_budgets", hydra=True)
    params = cfg.hydra.sweeper.params
    assert params["strategy"] == "transfer,finetune,scratch"
    assert params["data.samples_per_class"] == "10,100"
    assert cfg.data.root == str(tmp_path / "fmnist") and cfg.model.weights == "DEFAULT"
    cfg = preset(
        tmp_path, "fashion_mnist_budgets", "strategy=finetune", "data.samples_per_class=5", *FAST
    )
    s = train(cfg)
    assert s.status == "ok" and s.data == "fashion_mnist" and s.num_classes == 10


def test_two_stage_preset_trains_a_source_then_transfers_it(tmp_path):
    sweep = preset(tmp_path, "fashion_mnist_two_stage", "model.weights=x", hydra=True)
    assert sweep.hydra.sweeper.params["strategy"] == "transfer,partial,finetune,scratch"
    src = preset(
        tmp_path,
        "fashion_mnist_two_stage",
        "stage=source",
        "strategy=scratch",
        "model.weights=null",
        *FAST,
    )
    assert list(src.data.classes) == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat"]
    assert src.data.samples_per_class == 1000
    src.data.samples_per_class = 20
    assert train(src).status == "ok"

    tgt = preset(
        tmp_path,
        "fashion_mnist_two_stage",
        "strategy=partial",
        f"model.weights={tmp_path / 'run'}",
        "target_budget=5",
        *FAST,
        run="target",
    )
    assert list(tgt.data.classes) == ["Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    s = train(tgt)
    assert s.status == "ok" and s.num_classes == 5
    assert s.trainable_params < s.total_params  # partially frozen
