"""Grow a network where the sensitivity of a virtual layer says it pays (Schiela et al.), on two spirals."""
import sensinet as sn
from sensinet.datasets import make_spirals, train_test_split

from _common import options

args = options(__doc__)
d = make_spirals(300)
X_tr, X_te, y_tr, y_te = train_test_split(d.X, d.y, test_size=0.25, seed=0)
epochs, at = (300, 100) if args.quick else (1850, 450)
net = sn.Network(2, [sn.Dense(5, "relu"), sn.Dense(2)], loss="cross_entropy", seed=0)
ins = sn.LayerInsertion(at_epochs=[at])
final, hist = ins.fit(net, X_tr, y_tr, epochs=epochs, optimizer=sn.SGD(0.2), validation_data=(X_te, y_te))
pick = hist.insertions[0]
print(f"epoch {pick.epoch}: scores {({p: round(s, 5) for p, s in pick.scores.items()})}, inserted at {pick.position}")
print(f"{[l.units for l in final.layers[:-1]]}: training loss {hist.loss[-1]:.4f}")
hist.plot(args.out / "spirals_insertion.png")
print(f"figure: {args.out / 'spirals_insertion.png'}")
