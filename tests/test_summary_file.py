"""summary.json's file and the fields both a finished and an interrupted run derive from
metrics.csv's rows."""

from __future__ import annotations

import dataclasses
import json

import pytest

from tlbench import summary_file
from tlbench.summary_file import RunSummary


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
    summary_file.write(tmp_path, RunSummary(status="ok", test_acc=float("nan"), epochs=3))
    back = summary_file.read(tmp_path)
    assert back == RunSummary(status="ok", test_acc=None, epochs=3)
    written = json.loads((tmp_path / "summary.json").read_text())
    assert list(written) == [f.name for f in dataclasses.fields(RunSummary)]  # every field, always
    assert list(written)[: len(summary_file.REQUIRED)] == list(summary_file.REQUIRED)


def test_a_summary_of_another_version_reads_back_with_what_this_one_knows(tmp_path):
    """An older file lacks fields (they keep their defaults); a newer one's extra keys are
    dropped rather than refused: the report reads sweeps written by earlier versions."""
    (tmp_path / "summary.json").write_text(json.dumps({"status": "ok", "future_key": 1}))
    back = summary_file.read(tmp_path)
    assert back.status == "ok" and back.segments == [] and back.value("future_key") is None
    (tmp_path / "summary.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected a JSON object, found list"):
        summary_file.read(tmp_path)


def test_a_misspelt_field_is_a_bug_not_a_new_key():
    summary = RunSummary()
    summary.update({"best_val_acc": 0.5}, epochs=2)
    assert (summary.best_val_acc, summary.epochs) == (0.5, 2)
    with pytest.raises(AttributeError, match="RunSummary has no field 'best_val_accuracy'"):
        summary.update(best_val_accuracy=0.5)
