"""summary.json's file and the fields both a finished and an interrupted run derive from
metrics.csv's rows."""

from __future__ import annotations

from tlbench import summary_file


def test_best_and_final_val_acc_come_from_every_row_with_one():
    rows = [{"val/acc": 0.5}, {"val/acc": 0.8}, {"train/loss": 0.1}, {"val/acc": 0.7}]
    assert summary_file.val_accuracies(rows) == {"best_val_acc": 0.8, "final_val_acc": 0.7}


def test_without_a_validated_epoch_the_fallback_is_both():
    assert summary_file.val_accuracies([{"train/loss": 1.0}], fallback=0.4) == {
        "best_val_acc": 0.4,
        "final_val_acc": 0.4,
    }
    assert summary_file.val_accuracies([]) == {"best_val_acc": None, "final_val_acc": None}


def test_written_summaries_read_back_without_non_finite_numbers(tmp_path):
    summary_file.write(tmp_path, {"status": "ok", "test_acc": float("nan"), "epochs": 3})
    assert summary_file.read(tmp_path) == {"status": "ok", "test_acc": None, "epochs": 3}
