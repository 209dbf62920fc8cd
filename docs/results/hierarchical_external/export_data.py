"""Write the two public regression sets of this study as CSV files, from the packages that ship them (no
download): scikit-learn's diabetes (442 x 10, disease progression) and statsmodels' Fair (1978) affairs data
(6,366 x 8, time spent in extramarital affairs). Neither is shipped by sensinet.

    python docs/results/hierarchical_external/export_data.py DIR
    sensinet experiment hierarchical --data DIR/diabetes.csv DIR/fair.csv --target y --jobs 2 \\
        --out docs/results/hierarchical_external
"""
import sys
from pathlib import Path

from sklearn.datasets import load_diabetes
from statsmodels.datasets import fair

out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
out.mkdir(parents=True, exist_ok=True)
d = load_diabetes(as_frame=True).frame.rename(columns={"target": "y"})
d.to_csv(out / "diabetes.csv", index=False)
f = fair.load_pandas().data.rename(columns={"affairs": "y"})
f.to_csv(out / "fair.csv", index=False)
print(f"wrote {out / 'diabetes.csv'} {d.shape} and {out / 'fair.csv'} {f.shape}")
