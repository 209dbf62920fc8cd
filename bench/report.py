"""Markdown table of a pytest-benchmark JSON file: medians per group and the ratio to the peer.

    python -m pytest bench/ --benchmark-json=bench.json && python bench/report.py bench.json
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict


def main(path: str) -> None:
    data = json.load(open(path))
    groups = defaultdict(dict)
    for b in data["benchmarks"]:
        impl = b["params"].get("impl", b["name"])
        groups[b["group"]][impl] = b
    print(f"machine: {data['machine_info'].get('cpu', {}).get('brand_raw', '?')}\n")
    print("| benchmark | sensinet median | peer median | peer | speed-up |")
    print("|---|---|---|---|---|")
    for group, impls in sorted(groups.items()):
        if "sensinet" not in impls:
            continue
        s = impls["sensinet"]
        steps = s.get("extra_info", {}).get("steps", 1)
        peers = [k for k in impls if k != "sensinet"]
        for peer in peers or [None]:
            sm = s["stats"]["median"]
            per = f" ({sm / steps * 1e3:.3g} ms/step)" if steps > 1 else ""
            if peer is None:
                print(f"| {group} | {sm * 1e3:.3g} ms{per} | - | - | - |")
                continue
            pm = impls[peer]["stats"]["median"]
            print(f"| {group} | {sm * 1e3:.3g} ms{per} | {pm * 1e3:.3g} ms | {peer} | {pm / sm:.2f}x |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench.json")
