"""Every summary table committed under docs/results is rebuilt here from the committed per-run records and
must come out identical, so tables and records cannot drift apart."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("scipy")

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


def _csv(path: Path) -> list:
    with open(path) as fh:
        return list(csv.DictReader(fh))


def _same_rows(got: list, path: Path, skip: tuple = ()) -> None:
    """Rows equal to the committed CSV: text cells exactly, numbers to 1e-12 (CSV round trip)."""
    want = _csv(path)
    assert len(got) == len(want), path.name
    for g, w in zip(got, want):
        for k, v in w.items():
            if k in skip:
                continue
            gv = g.get(k, "")  # a CSV has every row's columns: cells a row lacks are empty
            if v == "":
                assert gv == "", (path.name, k)
                continue
            try:
                assert float(v) == pytest.approx(float(gv), rel=1e-12, abs=1e-300, nan_ok=True), (path.name, k)
            except (TypeError, ValueError):
                assert str(gv) == v, (path.name, k)


def test_pruning_tables():
    from sensinet.experiments import pruning

    lines = [json.loads(line) for line in open(RESULTS / "pruning" / "records.jsonl")]
    meta, rows = lines[0]["meta"], lines[1:]
    cells, primary = pruning.compare(rows, tuple(meta["datasets"]), tuple(meta["fractions"]))
    summary = pruning.summary_rows(rows, tuple(meta["datasets"]), tuple(meta["fractions"]), tuple(meta["criteria"]))
    _same_rows(summary, RESULTS / "pruning" / "summary.csv")
    _same_rows(cells, RESULTS / "pruning" / "comparisons.csv")
    _same_rows(primary, RESULTS / "pruning" / "orderings.csv")


@pytest.mark.parametrize("folder", ["insertion", "insertion_paper", "insertion_v2"])
def test_insertion_tables(folder):
    """Loss, error and insertion positions per variant (seconds and work are not kept per run)."""
    recs = [json.loads(line) for line in open(RESULTS / folder / "records.jsonl")]
    groups: dict = {}
    for r in recs:
        groups.setdefault((r["config"], r["variant"]), []).append(r)
    rows = []
    for (config, variant), rs in groups.items():
        fl = np.array([r["final_loss"] for r in rs])
        fe = np.array([r["final_test_error"] for r in rs])
        pos = [p for r in rs for p in r["insert_positions"]]
        rows.append({"config": config, "variant": variant, "runs": len(rs), "train_loss_mean": fl.mean(),
                     "train_loss_std": fl.std(), "train_loss_min": fl.min(), "train_loss_max": fl.max(),
                     "test_error_mean": fe.mean(), "test_error_std": fe.std(),
                     "positions": ";".join(f"{p}:{pos.count(p)}" for p in sorted(set(pos)))})
    _same_rows(rows, RESULTS / folder / "insertion_summary.csv",
               skip=("seconds_mean", "work_mean", "work_vs_large_from_start"))


@pytest.mark.parametrize("folder", ["hierarchical", "hierarchical_scale"])
def test_hierarchical_tables(folder, tmp_path):
    from sensinet.experiments import hierarchical as study
    from sensinet.experiments._executor import read_records

    recs = list(read_records(RESULTS / folder / "records.jsonl").values())
    cfg = study.study_config(False, 20, None, None, "concrete", 10, 10)
    study.write_outputs(recs, tmp_path, cfg, figures=False)
    committed = sorted(p.name for p in (RESULTS / folder).glob("*.csv"))
    assert committed and committed == sorted(p.name for p in tmp_path.glob("*.csv"))
    for name in committed:
        _same_rows(_csv(tmp_path / name), RESULTS / folder / name)
    assert (tmp_path / "summary.md").read_text() == (RESULTS / folder / "summary.md").read_text()
