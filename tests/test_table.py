"""foley table: Table I as a papermill batch; the tables list every cell, failures included."""
import csv
import json

import pytest
from test_cli import foley

from foleylib.evaluation.evaluate import BASELINES
from foleylib.evaluation.table import BASELINE_COLUMNS, write_tables


def cell(val_loss, f1, shuffled_f1):
    metrics = {name: dict.fromkeys(BASELINE_COLUMNS, 0.5) for name in BASELINES}
    metrics["model"] = {"onset_f1": f1, "envelope_corr": 0.7, "logmel_db": 12.0}
    metrics["video_shuffled"]["onset_f1"] = shuffled_f1
    return {"teacher_forced": {"val_loss": val_loss, "histogram_nll_nats": 2.5}, "metrics": metrics,
            "uses_video": None if f1 is None else f1 > shuffled_f1, "rtf": 0.05, "train_seconds": 61.0}


def test_tables_hold_every_cell_and_list_failures(tmp_path):
    cells = {("clap", "wavenet"): cell(0.4321, 0.9, 0.2), ("clap", "fusion"): {"error": "RuntimeError: boom"},
             ("car", "wavenet"): cell(1.5, None, None)}
    write_tables(tmp_path, cells, "header text")
    rows = list(csv.DictReader((tmp_path / "table1.csv").open()))
    assert [(r["video"], r["arch"]) for r in rows] == list(cells)
    assert rows[0]["val_loss"] == "0.4321" and rows[0]["onset_f1_shuffled"] == "0.2" and rows[0]["error"] == ""
    assert rows[1]["error"] == "RuntimeError: boom" and rows[1]["val_loss"] == ""
    md = (tmp_path / "table1.md").read_text()
    assert "header text" in md
    assert "| clap | wavenet | 0.4321 | - | 0.90 | 0.20 |" in md  # nll_bits missing: "-"
    assert "| car | wavenet | 1.5000 | - | - | - |" in md
    assert "- clap / fusion: RuntimeError: boom" in md
    assert md.count("| clap | silence |") == 1 and "| car | histogram NLL floor | 2.500 nats |" in md


@pytest.mark.slow
def test_foley_table_runs_the_protocol_notebook_per_cell(tmp_path):
    out = tmp_path / "results"
    proc = foley("table", "--scenes", "clap", "--archs", "fusion", "--preset", "tiny", "--steps", "2",
                 "--gen-seconds", "0.2", "--seconds", "3", "--out", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (out / "runs" / "clap_fusion.ipynb").exists()
    results = json.loads((out / "runs" / "clap_fusion" / "results.json").read_text())
    assert results["arch"] == "fusion" and results["steps"] == 2
    assert set(results["metrics"]) == {"model", *BASELINES}
    rows = list(csv.DictReader((out / "table1.csv").open()))
    assert len(rows) == 1 and rows[0]["error"] == ""
    assert float(rows[0]["val_loss"]) == pytest.approx(results["teacher_forced"]["val_loss"], rel=1e-3)
    assert "| clap | fusion |" in (out / "table1.md").read_text()
    bad = foley("table", "--scenes", "thunder", "--out", out)
    assert bad.returncode == 2 and "unknown architecture or scene: thunder" in bad.stderr
