"""scikit-learn estimators: a Pipeline, a grid search, and a fitted estimator explained like a network."""
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import sensinet as sn
from _common import options

args = options(__doc__)
X, y = load_breast_cancer(return_X_y=True)
X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
clf = sn.SensiNetClassifier(hidden_layer_sizes=(16,), max_iter=20 if args.quick else 500, early_stopping=True,
                            random_state=0)
pipe = make_pipeline(StandardScaler(), clf)
search = GridSearchCV(pipe, {"sensinetclassifier__learning_rate_init": [3e-3, 1e-2]}, cv=3)
search.fit(X_tr, y_tr)
print(f"best {search.best_params_}: test accuracy {search.score(X_te, y_te):.3f}")
best = search.best_estimator_[-1]
rc = sn.explain(best.network_, search.best_estimator_[0].transform(X_tr))
print(f"the fitted classifier's network has {rc.n_clusters_} activation patterns on the training set")
