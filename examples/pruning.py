"""Remove the neurons that matter least (structural pruning), and the loss against parameters kept."""
import sensinet as sn
from _common import concrete, options

args = options(__doc__)
X_tr, X_te, y_tr, y_te, _ = concrete()
net = sn.Network(8, [sn.Dense(64, "relu"), sn.Dense(64, "relu"), sn.Dense(1)], seed=0)
net.fit(X_tr, y_tr, epochs=10 if args.quick else 200, seed=0)
small, rec = sn.prune(net, X_tr, y_tr, amount=0.5, criterion="sensitivity")
print(rec)
print(f"test loss {net.objective(X_te, y_te):.4f} -> {small.objective(X_te, y_te):.4f} (before fine-tuning)")
curve = sn.pruning_curve(net, X_tr, y_tr, fractions=[0.25, 0.5, 0.75], criteria=["sensitivity", "magnitude"],
                         fine_tune_epochs=2 if args.quick else 20, validation_data=(X_te, y_te))
print(curve.to_frame()[["criterion", "fraction", "n_params", "loss"]].to_string(index=False))
curve.plot(args.out / "concrete_pruning.png")
print(f"figure: {args.out / 'concrete_pruning.png'}")
