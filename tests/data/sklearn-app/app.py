"""Trains a tiny classifier when it starts and prints one prediction (the same on every CPU)."""

import numpy as np
from sklearn.linear_model import LogisticRegression

rng = np.random.default_rng(0)
X = np.vstack([rng.normal(-2.0, 1.0, (50, 2)), rng.normal(2.0, 1.0, (50, 2))])
y = np.array([0] * 50 + [1] * 50)
model = LogisticRegression().fit(X, y)
print(f"prediction: {model.predict([[1.5, 2.5]])[0]} proba: {model.predict_proba([[1.5, 2.5]])[0][1]:.3f}")
