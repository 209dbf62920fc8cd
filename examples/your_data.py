"""Run a study on your own data: a CSV file with a header row is read, checked column by column, and the
pruning study runs on it with the same protocol, records and tables as on the embedded sets."""
from sklearn.datasets import load_diabetes

from _common import options
from sensinet.datasets import load_table
from sensinet.experiments import pruning

args = options(__doc__)
csv = args.out / "diabetes.csv"  # stands for your file: any numeric table with a header row
load_diabetes(as_frame=True).frame.to_csv(csv, index=False)
data = load_table(csv, target="target")  # the task is inferred: 214 distinct values -> regression
print(f"read {csv.name}: {data.n_samples} samples, features {', '.join(data.feature_names)}; task {data.task}")
result = pruning.run(args.out / "pruning_on_my_data", seeds=2 if args.quick else 10, quick=args.quick, data=[data],
                     progress=False)
best = min(result["summary"], key=lambda r: r["test_loss_median"] if r["fraction"] == 0.5 else float("inf"))
print(f"at 50 % of the neurons removed, the best criterion on {data.description.split(':')[0]} is "
      f"{best['criterion']} (median test loss {best['test_loss_median']:.3f}, {best['setting']})")
print(f"records, tables and figures in {result['out_dir']}")
