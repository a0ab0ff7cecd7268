"""The scikit-learn numbers that `src/metrics.rs` tests against.

    bench/.venv/bin/python tests/reference/f1_sklearn.py

Prints, for each case, micro / macro / weighted / samples F1 (multilabel) or
accuracy / macro F1 (single label) and the per-label F1, exactly as
`sklearn.metrics.precision_recall_fscore_support` computes them
(zero_division default). Measured with scikit-learn 1.9.1.
"""
import warnings

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

warnings.filterwarnings("ignore")

CASES = {
    # label 2 never true; label 3 never true nor predicted; sample 3 has no prediction;
    # sample 4 has neither a true nor a predicted label.
    "edge": (
        [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]],
        [[1, 0, 1, 0], [0, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]],
    ),
    # seeded random 12 x 5
    "random": (
        (np.random.RandomState(3).rand(12, 5) < 0.4).astype(int).tolist(),
        (np.random.RandomState(4).rand(12, 5) < 0.4).astype(int).tolist(),
    ),
}

for name, (t, p) in CASES.items():
    t, p = np.array(t), np.array(p)
    print(name, "true", t.tolist())
    print(name, "pred", p.tolist())
    print(name, "micro %.10f macro %.10f weighted %.10f samples %.10f" % tuple(
        f1_score(t, p, average=a) for a in ["micro", "macro", "weighted", "samples"]))
    print(name, "per-label", [round(float(v), 10) for v in f1_score(t, p, average=None)])

# single label: class 3 never predicted, class 4 absent from both (not counted by sklearn)
yt = [0, 0, 1, 1, 2, 2, 3, 0]
yp = [0, 1, 1, 1, 2, 0, 2, 0]
print("single accuracy %.10f macro %.10f" % (accuracy_score(yt, yp), f1_score(yt, yp, average="macro")))
