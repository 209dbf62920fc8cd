"""The numbers the README quotes from the studies are regenerated from the committed records here, so the
text and the data cannot drift apart."""
import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
FLAT = " ".join(README.split())  # prose wraps anywhere: compare with single spaces
RESULTS = ROOT / "docs" / "results"


def _table_rows(header: str) -> list:
    """The rows (lists of cells) of the README table whose header line starts with ``| header |``."""
    lines = README.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {header} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def test_pruning_orderings():
    rows = {(r["setting"], r["a"], r["b"]): r for r in csv.DictReader(open(RESULTS / "pruning" / "orderings.csv"))}
    quoted = _table_rows("setting | comparison")
    assert len(quoted) == 8
    for setting, comparison, wins, ratio, p_holm, verdict in quoted:
        a, b = comparison.split(" vs ")
        r = rows[("pruned" if setting == "as pruned" else "fine_tuned", a, b)]
        assert wins == r["wins_a"] and ratio == f"{float(r['geo_mean_loss_ratio']):.2f}"
        assert p_holm == f"{float(r['p_holm']):.2g}" and verdict == r["verdict"]


def test_grow_shrink_summary():
    gs = [json.loads(line) for line in open(RESULTS / "pruning" / "grow_shrink.jsonl")]
    ratio = np.log([g["grow_shrink_test_loss"] / g["fixed_test_loss"] for g in gs])
    from scipy.stats import wilcoxon

    wins, geo, p = int(np.sum(ratio < 0)), float(np.exp(ratio.mean())), float(wilcoxon(ratio).pvalue)
    assert f"grow-and-shrink wins {wins} of {len(gs)} runs" in FLAT
    assert f"geometric mean test-loss ratio of {geo:.2f}" in FLAT and f"p = {p:.2g}" in FLAT
    digits = [g for g in gs if g["dataset"] == "digits"]
    lost = sum(g["grow_shrink_test_loss"] > g["fixed_test_loss"] for g in digits)
    assert f"On digits it loses {lost} of {len(digits)}" in FLAT


def test_insertion_table():
    rows = {(r["config"], r["variant"]): r
            for r in csv.DictReader(open(RESULTS / "insertion" / "insertion_summary.csv"))}
    quoted = [r for r in _table_rows("configuration") if r[0] != "when"]
    assert len(quoted) == 10
    for config, variant, loss, err, work in quoted:
        r = rows[(config, variant)]
        assert loss == f"{float(r['train_loss_mean']):.4f} ± {float(r['train_loss_std']):.4f}"
        assert err == f"{float(r['test_error_mean']):.3f}"
        assert work == ("" if not r["work_vs_large_from_start"] or r["work_vs_large_from_start"] == "nan"
                        else f"{float(r['work_vs_large_from_start']):.2f}")
    (when,) = [r for r in _table_rows("configuration") if r[0] == "when"]
    epochs = sorted(int(v.rsplit(" ", 1)[1]) for c, v in rows if c == "when")
    assert when[2] == " / ".join(f"{float(rows[('when', f'[5] insert at epoch {e}')]['train_loss_mean']):.3f}"
                                 for e in epochs)
    # the largest- against the smallest-score control: mean difference in standard errors of the mean
    for config, big, small in (("ff44", "[4,4] insert at largest score", "[4,4] insert at smallest score"),
                               ("res2", "2 blocks insert at largest score", "2 blocks insert at smallest score")):
        d = float(rows[(config, small)]["train_loss_mean"]) - float(rows[(config, big)]["train_loss_mean"])
        se = np.hypot(float(rows[(config, small)]["train_loss_std"]),
                      float(rows[(config, big)]["train_loss_std"])) / np.sqrt(int(rows[(config, big)]["runs"]))
        assert 0.6 <= round(d / se, 1) <= 0.9 and f"{d:.3f} ± {se:.3f}" in FLAT


def test_titanic_feature_comparison():
    rows = list(csv.DictReader(open(RESULTS / "clusters" / "titanic_features.csv")))
    for features, label in (("sensinet", "the default"), ("paper", "the authors' features")):
        c = np.array([int(r["n_clusters"]) for r in rows if r["features"] == features])
        assert f"{label}: median {np.median(c):.0f}, range {c.min()}–{c.max()}" in FLAT
    assert f"{len(rows) // 2} seeds" in FLAT


@pytest.mark.parametrize("seed, noise", [(0, 0.0147), (1, 3.37), (2, 7.99), (3, 0.0115), (4, 0.119)])
def test_cluster_simulation_noise_weights(seed, noise):
    rows = [r for r in csv.DictReader(open(RESULTS / "clusters" / "simulation_summary.csv"))
            if r["variant"] == "l1_activity" and int(r["seed"]) == seed]
    assert float(rows[0]["max_noise_weight"]) == pytest.approx(noise, rel=5e-3)
    quoted = re.search(r"noise-bit weight is ([\d.]+)–([\d.]+) in three seeds, but ([\d.]+) and ([\d.]+)", README)
    lo, hi, a, b = map(float, quoted.groups())
    assert (lo <= round(noise, 2) <= hi) or round(noise, 1) in (a, b)


def _p(value: float) -> str:
    """A p-value as the README writes it (two digits, 1.9e-9 rather than 1.9e-09)."""
    return f"{float(value):.2g}".replace("e-0", "e-")


def _final_losses(folder: str) -> dict:
    out: dict = {}
    for line in open(RESULTS / folder / "records.jsonl"):
        r = json.loads(line)
        out.setdefault((r["config"], r["variant"]), []).append(r["final_loss"])
    return {k: np.array(v) for k, v in out.items()}


def test_insertion_presets_table_and_paired_tests():
    from scipy.stats import wilcoxon

    quoted = {r[0]: r[1:] for r in _table_rows("setting | [5] + insertion")}
    keys = [("ff5", "[5] + insertion -> [5,5]"), ("ff5", "[5] only"), ("ff5", "[5,5] from scratch"),
            ("res", "1 block + insertion -> 2 blocks"), ("res", "1 block only"), ("res", "2 blocks from scratch")]
    for label, folder in (("sensinet's defaults (He/Glorot)", "insertion"),
                          ('preset="paper", init="torch"', "insertion_paper"),
                          ('preset="v2", init="torch"', "insertion_v2")):
        L = _final_losses(folder)
        assert quoted[label] == [f"{L[k].mean():.3f}" for k in keys]
        ins, small, large = (L[k] for k in keys[:3])
        assert np.sum(ins < small) == 30 and f"p = {_p(wilcoxon(ins, small).pvalue)}" in FLAT
        assert _p(wilcoxon(ins, large).pvalue) in FLAT and large.mean() < ins.mean()
        a, b = L[("ff44", "[4,4] insert at largest score")], L[("ff44", "[4,4] insert at smallest score")]
        assert f"{np.sum(a < b)}/30 (p = {_p(wilcoxon(a, b).pvalue)})" in FLAT


def _rows(folder: str, name: str, key: str) -> dict:
    return {r[key]: r for r in csv.DictReader(open(RESULTS / folder / f"{name}.csv"))}


def test_hierarchical_main_depth_and_variants():
    main = _rows("hierarchical", "main_pooled", "network")
    m = main["4x64 tanh"]
    assert (f"4×64 tanh: {m['wins']} wins, {m['ties']} ties, {m['losses']} losses over 6 data sets × 20 shared "
            f"starts; final-J ratio {float(m['ratio_geomean']):.2f}, p = {_p(m['p_wilcoxon'])}") in FLAT
    s = main["2x10 tanh"]
    assert (f"2×10: {s['wins']} / {s['ties']} / {s['losses']}; backprop is better, ratio "
            f"{float(s['ratio_geomean']):.2f}, p = {_p(s['p_wilcoxon'])}") in FLAT
    assert float(s["ratio_geomean"]) > 1 and float(s["p_wilcoxon"]) < 0.05 and float(m["p_wilcoxon"]) >= 0.05
    depth = _rows("hierarchical", "depth", "network")
    for d in (4, 8, 16):
        r = depth[f"{d}x256 tanh"]
        less = round(100 * (1 - float(r["hier_work_to_target"]) / float(r["bp_work_to_target"])))
        assert f"{d} layers: {less} % less, p = {_p(r['p_work_to_target'])}" in FLAT
    assert float(depth["4x256 tanh"]["p_work_to_target"]) < 0.05
    assert all(float(depth[f"{d}x256 tanh"]["p_work_to_target"]) >= 0.05 for d in (8, 16))
    vs = _rows("hierarchical", "variants_vs_default", "variant")
    so, rnd = vs["score=second_order"], vs["p_rand=1 (random blocks)"]
    assert (f"second-order scoring is worse (ratio {float(so['ratio_geomean']):.2f}, p = {_p(so['p_wilcoxon'])})"
            in FLAT)
    assert f"sensitivity-chosen ones ({float(rnd['ratio_geomean']):.2f}, p = {_p(rnd['p_wilcoxon'])})" in FLAT
    assert float(so["p_wilcoxon"]) < 0.05 <= float(rnd["p_wilcoxon"])


def test_hierarchical_large_networks():
    pooled = _rows("hierarchical_scale", "scale_pooled", "variant")
    d, r = pooled["default"], pooled["p_rand=1 (random blocks)"]
    assert (f"{d['wins']} of {d['pairs']} pairs for the default, ratio {float(d['final_ratio_geomean']):.2f}, "
            f"p = {_p(d['p_final'])}") in FLAT
    assert (f"The default's final-J ratio is {float(d['alt_ratio_geomean']):.2f}, p = {_p(d['alt_p_final'])}"
            in FLAT)
    assert all(float(v["alt_p_final"]) >= 0.05 for v in pooled.values())  # "none ends significantly lower"
    assert (f"the default takes {float(d['alt_time_ratio_geomean']):.2f}× backprop's wall time at lr 1e-4 "
            f"(p = {_p(d['alt_p_time'])}), random blocks {float(r['alt_time_ratio_geomean']):.2f}× "
            f"(p = {_p(r['alt_p_time'])})") in FLAT
    vs = _rows("hierarchical_scale", "scale_vs_default", "variant")
    rv, nv = vs["p_rand=1 (random blocks)"], vs["neuron level"]
    assert f"(final-J ratio {float(rv['ratio_geomean']):.2f}, p = {_p(rv['p_wilcoxon'])})" in FLAT
    assert f"ends level with the default (ratio {float(nv['ratio_geomean']):.2f}, p = {_p(nv['p_wilcoxon'])})" in FLAT
    assert float(rv["p_wilcoxon"]) >= 0.05 and float(nv["p_wilcoxon"]) >= 0.05
    n = len(open(RESULTS / "hierarchical_scale" / "records.jsonl").readlines())
    assert n == 120


def test_cluster_study_numbers():
    res = json.load(open(RESULTS / "clusters" / "results.json"))
    l1 = res["simulation"]["by_variant"]["l1_activity"]
    assert (f"{min(l1['n_clusters'])}–{max(l1['n_clusters'])} clusters per seed, and "
            f"{l1['seeds_solved']}/{l1['seeds']} seeds solved") in FLAT
    l2 = res["simulation"]["by_variant"]["l2"]
    assert f"{l2['seeds_solved']}/{l2['seeds']} seeds solve the task" in FLAT
    assert (f"this AVX-512 build gave {min(l2['n_clusters'])}–{max(l2['n_clusters'])} clusters with "
            f"{round(100 * l2['median_rule_share_solved'])} % of the live samples in clean rule clusters") in FLAT
    t = res["titanic"]
    acc = [r["test_accuracy"] for r in t["runs"]]
    dead = [r["dead_share"] for r in t["runs"]]
    assert (f"{len(t['runs'])} seeds): {t['n_clusters_min']}–{t['n_clusters_max']} clusters per seed, test accuracy "
            f"{min(acc):.2f}–{max(acc):.2f}") in FLAT
    assert f"hold {round(100 * min(dead))}–{round(100 * max(dead))} % of the passengers" in FLAT
    b = res["breast_cancer"]
    assert (f"{b['n_clusters']} clusters among {b['n_train']} training samples ({b['n_singletons']} singletons)"
            in FLAT)
    fid = {(r["by"], int(r["n_clusters"])): r for r in csv.DictReader(open(RESULTS / "clusters" /
                                                                            "breast_cancer_fidelity.csv"))}
    ten = fid[("hamming", 10)]
    assert (f"to 10 clusters the refit linear maps keep R² {float(ten['r2']):.3f} and agree with the network's "
            f"class on {100 * float(ten['agreement']):.1f} % of the training samples") in FLAT
    first_full = min(k for (by, k), r in fid.items() if by == "hamming" and float(r["agreement"]) == 1.0)
    assert f"{first_full} clusters reach 100 %" in FLAT
    test = [float(fid[("hamming", k)]["agreement_test"]) for k in (1, 10, b["n_clusters"])]
    assert "agreement " + " → ".join(f"{a:.2f}" for a in test) in FLAT


def test_estimator_defaults_table():
    """The README's table of default scores is the bench script's comparison of the committed records."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("estimator_defaults", ROOT / "bench" / "estimator_defaults.py")
    pytest.importorskip("scipy")
    pytest.importorskip("sklearn")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    records = [json.loads((RESULTS / "estimator_defaults" / f"{n}.json").read_text()) for n in ("before", "after")]
    assert bench.compare(*records) in README


def test_hierarchical_external_data():
    """The README's numbers of the study on data sets sensinet does not ship come from its records."""
    rows = {r["network"]: r for r in csv.DictReader(open(RESULTS / "hierarchical_external" / "main_pooled.csv"))}
    big, small = rows["4x64 tanh"], rows["2x10 tanh"]
    assert (big["wins"], big["ties"], big["losses"]) == ("0", "0", "40")
    assert f"1.55, p = {float(big['p_wilcoxon']):.2g}" in FLAT
    assert (small["wins"], small["ties"], small["losses"]) == ("8", "7", "25")
    assert f"(ratio {float(small['ratio_geomean']):.3f}, p = {float(small['p_wilcoxon']):.3g})" in FLAT
    assert round(float(big["ratio_geomean"]), 2) == 1.55
    tables = {name: list(csv.DictReader(open(RESULTS / "hierarchical_external" / f"table_{name}.csv")))
              for name in ("diabetes", "fair")}
    for name, quoted in (("diabetes", "70.46 against 70.74"), ("fair", "2.25 against 2.32")):
        row = next(r for r in tables[name] if r["network"] == "4x64 tanh")
        a, b = quoted.split(" against ")
        digits = len(a.split(".")[1])
        assert (f"{float(row['hier_test_rmse']):.{digits}f}", f"{float(row['bp_test_rmse']):.{digits}f}") == (a, b)
        assert quoted in FLAT


def test_onnx_agreement_table():
    rec = json.loads((RESULTS / "onnx" / "agreement.json").read_text())["largest_relative_difference"]
    rows = {r[0]: r[1:] for r in _table_rows("precision | raw outputs")}
    for dtype in ("float64", "float32"):
        assert rows[dtype] == [f"{rec[f'{dtype} forward']['onnxruntime_vs_sensinet']:.1e}",
                               f"{rec[f'{dtype} predict']['onnxruntime_vs_sensinet']:.1e}"]
    p = rec["float32 predict"]
    assert (f"(onnxruntime {p['onnxruntime_vs_float64']:.1e}, sensinet {p['sensinet_vs_float64']:.1e})"
            in FLAT)
