"""The study's tables: paired wins, ties and losses, summaries per data set, depth scaling, variants."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import numpy as np


from ..._tables import cell, write_table
from .._stats import mean_ci95, wilcoxon_p
from .figures import plot_curves, plot_depth
from .pairs import pair_records, paired_reach, reach, versus_default
from .scale import write_scale

TIE_RTOL = 0.01  # |J_h - J_bp| <= 1 % of the smaller one counts as a tie


def wins_ties_losses(pairs: list) -> tuple:
    w = t = l = 0
    for p in pairs:
        if p["bp"] is None:
            continue
        a, b = p["hier"]["train_mse"], p["bp"]["train_mse"]
        if abs(a - b) <= TIE_RTOL * min(a, b):
            t += 1
        elif a < b:
            w += 1
        else:
            l += 1
    return w, t, l


def _stats(recs: list, prefix: str) -> dict:
    J = np.array([r["train_mse"] for r in recs])
    te = np.array([r["test_rmse"] for r in recs])
    return {f"{prefix}_mse_mean": J.mean(), f"{prefix}_mse_ci95": mean_ci95(J)[1], f"{prefix}_mse_best": J.min(),
            f"{prefix}_mse_worst": J.max(),
            f"{prefix}_test_rmse": te.mean(), f"{prefix}_test_rmse_sd": te.std(),
            f"{prefix}_time": float(np.mean([r["time"] for r in recs])),
            f"{prefix}_work": float(np.mean([r["work"] for r in recs])),
            f"{prefix}_diverged": int(sum(r["status"] == "diverged" for r in recs))}


def summary_rows(records: Iterable[dict], experiment: str) -> list:
    """One row per (dataset, arch, variant): both methods' statistics and the wins/ties/losses."""
    groups: dict = {}
    for key, p in pair_records(records).items():
        if key[0] != experiment:
            continue
        groups.setdefault(key[1:4], []).append(p)
    rows = []
    for (ds, arch, variant), ps in sorted(groups.items()):
        ps = [p for p in ps if p["bp"] is not None]
        if not ps:
            continue
        w, t, l = wins_ties_losses(ps)
        row = {"dataset": ds, "network": arch, "variant": variant, "inner": ps[0]["hier"]["inner"], "starts": len(ps),
               "budget": ps[0]["hier"]["budget"]}
        row.update(_stats([p["hier"] for p in ps], "hier"))
        row.update(_stats([p["bp"] for p in ps], "bp"))
        row.update(wins=w, ties=t, losses=l)
        row["p_wilcoxon"] = wilcoxon_p([p["hier"]["train_mse"] - p["bp"]["train_mse"] for p in ps])
        row["hier_outer"] = float(np.mean([p["hier"].get("n_outer", 0) for p in ps]))
        rows.append(row)
    return rows


def pooled_main_rows(records: Iterable[dict]) -> list:
    """Per network of the main experiment, over every (data set, start) pair: W/T/L, the geometric mean of the
    final-J ratio hierarchical / backprop and the paired Wilcoxon p of its logarithm."""
    groups: dict = {}
    for key, p in pair_records(records).items():
        if key[0] == "main" and p["bp"] is not None:
            groups.setdefault(key[2], []).append(p)
    rows = []
    for arch, ps in sorted(groups.items()):
        r = np.log([p["hier"]["train_mse"] / p["bp"]["train_mse"] for p in ps])
        w, t, l = wins_ties_losses(ps)
        rows.append({"network": arch, "pairs": len(ps), "datasets": len({p["hier"]["dataset"] for p in ps}),
                     "wins": w, "ties": t, "losses": l, "ratio_geomean": float(np.exp(r.mean())),
                     "p_wilcoxon": wilcoxon_p(r)})
    return rows


DEPTH_TARGET = 0.1  # fixed target of the depth experiment: training MSE 0.1 on standardized targets


def depth_rows(records: Iterable[dict], fixed_target: float = DEPTH_TARGET) -> list:
    """Time and work to a target loss as depth grows, two ways: the per-start paired target (the larger of the
    two methods' *best* J along their curves, so both reach it) and a fixed target J <= ``fixed_target`` (with
    how many starts reach it; medians over those that do)."""
    groups: dict = {}
    for key, p in pair_records(records).items():
        if key[0] == "depth" and p["bp"] is not None:
            groups.setdefault((key[1], key[2]), []).append(p)
    rows = []
    for (ds, arch), ps in groups.items():
        depth, width = (int(v) for v in arch.split()[0].split("x"))
        th, tb, wh, wb, fh, fb, fj = [], [], [], [], [], [], []
        for p in ps:
            a, b = paired_reach(p["hier"], p["bp"])
            wh.append(a[0]), th.append(a[1]), wb.append(b[0]), tb.append(b[1])
            fh.append(reach(p["hier"]["curve"], fixed_target)[1])
            fb.append(reach(p["bp"]["curve"], fixed_target)[1])
            fj.append(p["hier"]["train_mse"] - p["bp"]["train_mse"])
        w, t, l = wins_ties_losses(ps)
        med = lambda v: float(np.nanmedian(v)) if np.any(np.isfinite(v)) else math.nan  # noqa: E731
        row = {"dataset": ds, "network": arch, "depth": depth, "width": width, "starts": len(ps),
               "hier_time_to_target": med(th), "bp_time_to_target": med(tb),
               "hier_work_to_target": med(wh), "bp_work_to_target": med(wb),
               "time_ratio_hier_over_bp": med(np.array(th) / np.array(tb)),
               "fixed_target": fixed_target,
               "hier_reached_fixed": int(np.sum(np.isfinite(fh))), "bp_reached_fixed": int(np.sum(np.isfinite(fb))),
               "hier_time_to_fixed": med(fh), "bp_time_to_fixed": med(fb),
               "p_work_to_target": wilcoxon_p(np.subtract(wh, wb)), "p_time_to_target": wilcoxon_p(np.subtract(th, tb)),
               "p_final": wilcoxon_p(fj)}
        row.update({k: v for k, v in _stats([p["hier"] for p in ps], "hier").items()
                    if k in ("hier_mse_mean", "hier_time", "hier_work")})
        row.update({k: v for k, v in _stats([p["bp"] for p in ps], "bp").items()
                    if k in ("bp_mse_mean", "bp_time", "bp_work")})
        row["hier_best_mse_mean"] = float(np.mean([min(c[1] for c in p["hier"]["curve"]) for p in ps]))
        row["bp_best_mse_mean"] = float(np.mean([min(c[1] for c in p["bp"]["curve"]) for p in ps]))
        row["hier_seconds_per_work"] = row["hier_time"] / max(row["hier_work"], 1e-12)
        row["bp_seconds_per_work"] = row["bp_time"] / max(row["bp_work"], 1e-12)
        row.update(wins=w, ties=t, losses=l)
        rows.append(row)
    return sorted(rows, key=lambda r: (r["width"], r["depth"]))


_MAIN_COLS = [
    ("network", "network"), ("method", lambda r: r["_m"]), ("starts", "starts"),
    ("train MSE mean ± 95 % CI",
     lambda r: f"{cell(r[r['_p'] + '_mse_mean'])} ± {cell(r[r['_p'] + '_mse_ci95'], '.2g')}"),
    ("best", lambda r: cell(r[f"{r['_p']}_mse_best"])), ("worst", lambda r: cell(r[f"{r['_p']}_mse_worst"])),
    ("test RMSE (orig. scale)", lambda r: f"{r[r['_p'] + '_test_rmse']:.4g} ± {r[r['_p'] + '_test_rmse_sd']:.2g}"),
    ("time s", lambda r: cell(r[f"{r['_p']}_time"])), ("work", lambda r: cell(r[f"{r['_p']}_work"])),
    ("diverged", lambda r: cell(r[f"{r['_p']}_diverged"])),
    ("hier W/T/L", lambda r: f"{r['wins']}/{r['ties']}/{r['losses']}" if r["_p"] == "hier" else ""),
    ("paired p", lambda r: f"{r['p_wilcoxon']:.2g}" if r["_p"] == "hier" else ""),
]


def _long(rows: list) -> list:
    out = []
    for r in rows:
        out.append({**r, "_m": "hierarchical" if r["variant"] == "default" else f"hier ({r['variant']})", "_p": "hier"})
        out.append({**r, "_m": f"backprop ({r['inner']})", "_p": "bp"})
    return out


def write_outputs(records: list, out: Path, cfg: dict, figures: bool = True) -> dict:
    """Tables (CSV + Markdown) and figures from the records."""
    result: dict = {"records": records, "main": [], "depth": [], "variants": [], "scale": [], "scale_pooled": []}
    md = ["# Hierarchical multi-scale optimization vs backpropagation: multi-start study", ""]
    if any(r["experiment"] != "scale" for r in records):
        md += [f"Budget {cfg['budget']:g} full-gradient equivalents per run (depth: {cfg['depth_budget']:g}); Adam "
               "lr 1e-3, batch 32 for both methods unless a variant says otherwise; same initial parameters and split "
               f"per start. W/T/L: hierarchical final training MSE lower / within {TIE_RTOL:.0%} / higher than "
               "backprop's on the same start. Training MSE is on standardized targets; test RMSE on the original "
               "scale (90/10 split).", ""]
    main = summary_rows(records, "main")
    result["main"] = main
    pairs = pair_records(records)
    for ds in dict.fromkeys(r["dataset"] for r in main):
        rows = [r for r in main if r["dataset"] == ds]
        write_table(rows, out / f"table_{ds}.csv", floatfmt=".6g")
        text = write_table(_long(rows), None, out / f"table_{ds}.md", _MAIN_COLS, title=ds)
        md += [text]
        if figures:
            for arch in dict.fromkeys(r["network"] for r in rows):
                ps = [p for k, p in sorted(pairs.items()) if k[0] == "main" and k[1] == ds and k[2] == arch]
                if ps:
                    plot_curves(ps, out / f"curves_{ds}_{arch.replace(' ', '_')}.png", f"{ds}, {arch}")
    pooled = pooled_main_rows(records)
    result["main_pooled"] = pooled
    if pooled:
        cols = ["network", "datasets", "pairs", ("W/T/L", lambda r: f"{r['wins']}/{r['ties']}/{r['losses']}"),
                ("final J ratio hier/bp (geo. mean)", "ratio_geomean"),
                ("paired p", lambda r: f"{r['p_wilcoxon']:.2g}")]
        md += [write_table(pooled, out / "main_pooled.csv", out / "main_pooled.md", cols,
                           title="Main experiment pooled over data sets and starts (paired Wilcoxon of log J ratios)")]
    dep = depth_rows(records)
    result["depth"] = dep
    if dep:
        cols = ["network", "starts", ("hier final MSE", "hier_mse_mean"), ("bp final MSE", "bp_mse_mean"),
                ("hier best MSE", "hier_best_mse_mean"), ("bp best MSE", "bp_best_mse_mean"),
                ("hier s to paired target", "hier_time_to_target"), ("bp s to paired target", "bp_time_to_target"),
                ("time ratio hier/bp", "time_ratio_hier_over_bp"),
                ("hier work to paired target", "hier_work_to_target"),
                ("bp work to paired target", "bp_work_to_target"),
                (f"hier reached J<={DEPTH_TARGET:g}", "hier_reached_fixed"),
                (f"bp reached J<={DEPTH_TARGET:g}", "bp_reached_fixed"),
                ("hier s to it", "hier_time_to_fixed"), ("bp s to it", "bp_time_to_fixed"),
                ("hier s/work", "hier_seconds_per_work"), ("bp s/work", "bp_seconds_per_work"),
                ("hier W/T/L (final)", lambda r: f"{r['wins']}/{r['ties']}/{r['losses']}"),
                ("p (final)", lambda r: f"{r['p_final']:.2g}"),
                ("p (work to target)", lambda r: f"{r['p_work_to_target']:.2g}"),
                ("p (time to target)", lambda r: f"{r['p_time_to_target']:.2g}")]
        md += [write_table(dep, out / "depth.csv", out / "depth.md", cols,
                           title=f"Depth scaling on {dep[0]['dataset']}: median time and work to a target loss "
                                 "(paired target: the larger of the two methods' best J of a start)", floatfmt=".6g")]
        if figures:
            for arch in dict.fromkeys(r["network"] for r in dep):
                ps = [p for k, p in sorted(pairs.items()) if k[0] == "depth" and k[2] == arch]
                if ps:
                    plot_curves(ps, out / f"curves_depth_{arch.replace(' ', '_')}.png",
                                f"{ps[0]['hier']['dataset']}, {arch}")
        if figures:
            plot_depth(dep, out / "depth_scaling.png")
    var = summary_rows(records, "variants")
    result["variants"] = var
    if var:
        cols = ["dataset", "network", "variant", "inner", "starts", ("hier MSE mean", "hier_mse_mean"),
                ("hier best", "hier_mse_best"), ("hier worst", "hier_mse_worst"), ("bp MSE mean", "bp_mse_mean"),
                ("hier time s", "hier_time"), ("bp time s", "bp_time"), ("outer its", "hier_outer"),
                ("W/T/L", lambda r: f"{r['wins']}/{r['ties']}/{r['losses']}"),
                ("paired p", lambda r: f"{r['p_wilcoxon']:.2g}")]
        md += [write_table(var, out / "variants.csv", out / "variants.md", cols,
                           title="Variants (each against backprop with the same inner optimizer and budget)",
                           floatfmt=".6g")]
    for exp, name in (("variants", "variants_vs_default"), ("scale", "scale_vs_default")):
        vs = versus_default(records, exp)
        result[name] = vs
        if vs:
            cols = ["variant", "pairs", ("ends lower than the default", "lower_than_default"),
                    ("final J ratio variant/default (geo. mean)", "ratio_geomean"),
                    ("paired p", lambda r: f"{r['p_wilcoxon']:.2g}")]
            md += [write_table(vs, out / f"{name}.csv", out / f"{name}.md", cols,
                               title=f"{exp}: each hierarchical variant against the default on the same starts "
                                     "(pooled over data sets and networks)")]
    scale, pooled, text = write_scale(records, out)
    result["scale"], result["scale_pooled"] = scale, pooled
    if scale:
        md += [text]
        if figures:
            for arch in dict.fromkeys(r["network"] for r in scale):
                for variant in dict.fromkeys(r["variant"] for r in scale):
                    ps = [p for k, p in sorted(pairs.items()) if k[0] == "scale" and k[2] == arch and k[3] == variant]
                    name = variant.split(" ")[0].replace("=", "-")
                    plot_curves(ps, out / f"curves_scale_{arch.replace(' ', '_')}_{name}.png",
                                f"{ps[0]['hier']['dataset']}, {arch}, {variant}")
    (out / "summary.md").write_text("\n".join(md) + "\n")
    return result
