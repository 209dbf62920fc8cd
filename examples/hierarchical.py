"""Train only the most sensitive block of layers at a time (hierarchical multi-scale optimization)."""
import sensinet as sn
from _common import concrete, options

args = options(__doc__)
X_tr, X_te, y_tr, y_te, _ = concrete()
net = sn.Network(8, [sn.Dense(32, "tanh") for _ in range(4)] + [sn.Dense(1)], seed=0)
opt = sn.HierarchicalOptimizer(budget=5 if args.quick else 60, random_state=0)
res = opt.run(net, X_tr, y_tr)
print(f"{res.n_outer} outer iterations, status {res.status}: J {res.J0:.4f} -> {res.J:.4f} for {res.work:.1f} "
      "full-gradient equivalents")
print("blocks trained:", res.block_counts())
res.plot(args.out / "concrete_hierarchical.png")
print(f"figure: {args.out / 'concrete_hierarchical.png'}")

# The tree's neuron level: below a layer, halves of its neurons down to groups of 8 (only they are trained).
fine = sn.Network(8, [sn.Dense(32, "tanh") for _ in range(4)] + [sn.Dense(1)], seed=0)
res_n = sn.HierarchicalOptimizer(min_neurons=8, budget=5 if args.quick else 60, random_state=0).run(fine, X_tr, y_tr)
print(f"neuron level: J {res_n.J0:.4f} -> {res_n.J:.4f}; groups (layer, first, last): times trained",
      res_n.neuron_counts())
