"""`gmu.GMUClassifier`: a scikit-learn estimator over `gmu.fit` (loaded on first use)."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence, Union

import numpy as np

from . import ArrayLike, fit

try:  # scikit-learn is optional: with it, GMUClassifier is a full estimator (clone, tags, score).
    from sklearn.base import BaseEstimator as _Base, ClassifierMixin as _Classifier
except ImportError:  # pragma: no cover - exercised only without scikit-learn
    _Base, _Classifier = object, object


class GMUClassifier(_Classifier, _Base):
    """A scikit-learn estimator over one feature matrix whose column groups are the views.

    ``views`` maps each view's name to its columns in ``X`` (a ``slice`` or a
    list of column indices), e.g. ``{"fou": slice(0, 76), "zer": slice(76, 123)}``.
    The other parameters are `gmu.fit`'s, with its defaults; ``dev`` is the
    share of the training rows held out for early stopping. ``fit(X, y)``
    with a 1-D ``y`` trains a classifier (``classes_`` are the sorted
    labels); with a 2-D 0/1 ``y``, a multilabel model whose ``predict``
    returns the 0/1 matrix. Works with ``cross_val_score``, ``GridSearchCV``
    and ``clone`` (scikit-learn is not needed to use it otherwise).
    """

    def __init__(
        self,
        views: Optional[Mapping[str, Union[slice, Sequence[int]]]] = None,
        fusion: str = "gmu",
        head: str = "maxout",
        hidden: int = 128,
        lr: float = 1e-3,
        dropout: float = 0.5,
        max_norm: float = 10.0,
        batch_size: int = 64,
        epochs: int = 100,
        patience: int = 10,
        threshold: float = 0.5,
        modality_dropout: float = 0.0,
        view_noise: float = 0.0,
        noise_kind: str = "mixed",
        noise_sigma: Sequence[float] = (0.5, 4.0),
        gate_supervision: float = 0.0,
        gate_supervision_clean: float = 0.0,
        impute: bool = False,
        experts: str = "maxout",
        tied_gates: bool = False,
        gate_softmax: bool = False,
        gate_hidden: int = 0,
        gate_per_view: bool = False,
        engine: str = "auto",
        dev: float = 0.2,
        seed: int = 0,
    ):
        self.views = views
        self.fusion = fusion
        self.head = head
        self.hidden = hidden
        self.lr = lr
        self.dropout = dropout
        self.max_norm = max_norm
        self.batch_size = batch_size
        self.epochs = epochs
        self.patience = patience
        self.threshold = threshold
        self.modality_dropout = modality_dropout
        self.view_noise = view_noise
        self.noise_kind = noise_kind
        self.noise_sigma = noise_sigma
        self.gate_supervision = gate_supervision
        self.gate_supervision_clean = gate_supervision_clean
        self.impute = impute
        self.experts = experts
        self.tied_gates = tied_gates
        self.gate_softmax = gate_softmax
        self.gate_hidden = gate_hidden
        self.gate_per_view = gate_per_view
        self.engine = engine
        self.dev = dev
        self.seed = seed

    _OPTIONS = ("head", "hidden", "lr", "dropout", "max_norm", "batch_size", "epochs", "patience", "threshold",
                "modality_dropout", "view_noise", "noise_kind", "noise_sigma",
                "gate_supervision", "gate_supervision_clean", "impute", "experts", "tied_gates",
                "gate_softmax", "gate_hidden", "gate_per_view", "engine", "seed")

    if _Base is object:  # without scikit-learn: the two methods its estimators must have

        def get_params(self, deep: bool = True) -> Dict[str, Any]:
            return {k: getattr(self, k) for k in ("views", "fusion", "dev", *self._OPTIONS)}

        def set_params(self, **params: Any) -> "GMUClassifier":
            for k, v in params.items():
                if k not in self.get_params():
                    raise ValueError(f"invalid parameter {k!r} for GMUClassifier")
                setattr(self, k, v)
            return self

    def _split(self, X: ArrayLike) -> Dict[str, np.ndarray]:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2:
            raise ValueError(f"invalid X: shape {X.shape}; expected [rows, columns]")
        if not self.views:
            raise ValueError("invalid views: give the view columns, e.g. views={'a': slice(0, 76), 'b': slice(76, 123)}")
        width = getattr(self, "n_features_in_", X.shape[1])
        if X.shape[1] != width:
            raise ValueError(f"invalid X: {X.shape[1]} columns; the model was fitted on {width}")
        out = {}
        for name, cols in self.views.items():
            part = X[:, cols]
            if part.ndim != 2 or part.shape[1] == 0:
                raise ValueError(f"invalid views: view '{name}' selects no columns of X ({X.shape[1]} columns)")
            out[name] = part
        return out

    def fit(self, X: ArrayLike, y: ArrayLike) -> "GMUClassifier":
        """Trains on ``X`` ``[n, features]`` and ``y`` (``[n]`` classes or ``[n, L]`` 0/1 labels)."""
        X = np.asarray(X, dtype=np.float32)
        self.n_features_in_ = X.shape[1] if X.ndim == 2 else 0
        views = self._split(X)
        y = np.asarray(y)
        options = {k: getattr(self, k) for k in self._OPTIONS}
        if y.ndim == 2:
            self.multilabel_ = True
            self.classes_ = np.arange(y.shape[1])
            self.model_ = fit(views, y.astype(np.uint8), fusion=self.fusion, dev=self.dev, **options)
        else:
            self.multilabel_ = False
            self.classes_, codes = np.unique(y, return_inverse=True)
            names = [str(j) for j in range(len(self.classes_))]
            self.model_ = fit(views, codes, fusion=self.fusion, dev=self.dev, label_names=names, **options)
        return self

    def _outputs(self, X: ArrayLike) -> Dict[str, Any]:
        if not hasattr(self, "model_"):
            raise AttributeError("this GMUClassifier is not fitted yet; call fit(X, y) first")
        return self.model_.predict(self._split(X), importance=False)

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Probabilities ``[n, classes]`` (columns in ``classes_``' order)."""
        return self._outputs(X)["probabilities"]

    def predict(self, X: ArrayLike) -> np.ndarray:
        """The class of each row (from ``classes_``) or, multilabel, the 0/1 matrix."""
        out = self._outputs(X)
        if self.multilabel_:
            return out["decisions"].astype(np.int64)
        return self.classes_[out["decisions"].argmax(axis=1)]

    def gates(self, X: ArrayLike) -> Dict[str, np.ndarray]:
        """Per view, the mean gate of each row (gated fusion only): ``{view: [n]}``."""
        out = self._outputs(X)
        return {v: out[f"gate_{v}"] for v in self.model_.views if f"gate_{v}" in out}

    def __sklearn_tags__(self):  # noqa: D105 - scikit-learn >= 1.6
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags
