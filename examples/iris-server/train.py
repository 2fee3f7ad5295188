"""Train the iris classifier and save it as model/model.joblib (run on the build machine, before the build).

    python3 train.py

The data set ships inside scikit-learn, so this needs no network.
"""

from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

iris = load_iris()
model = LogisticRegression(max_iter=1000).fit(iris.data, iris.target)
out = Path(__file__).parent / "model" / "model.joblib"
out.parent.mkdir(exist_ok=True)
joblib.dump({"model": model, "classes": list(iris.target_names)}, out)
print(f"saved {out} (training accuracy {model.score(iris.data, iris.target):.3f})")
