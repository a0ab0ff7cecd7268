"""gmu from Python: Gated Multimodal Units (Arevalo et al., 2017), in-process.

The same Rust code as the ``gmu`` command line, called directly: train a
fusion model on NumPy arrays, load a model directory any gmu command wrote,
and predict with the per-sample gates, contribution shares and occlusion
importance of each view.

    >>> import gmu
    >>> m = gmu.load("runs/mfeat/seed-0/gmu")
    >>> out = m.predict({"fou": X_fou, "zer": X_zer})
    >>> out["predicted"][:3], out["gate_fou"][:3]

Everything that can go wrong with the input raises ``ValueError`` (bad
arrays, options, labels), ``FileNotFoundError`` (a model or image that is not
there) or ``gmu.GmuError`` (anything else), with gmu's own message. Long
calls release the GIL. Training reports each epoch to the ``gmu`` logger (at
INFO) and to an optional callback.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import _native
from ._native import GmuError

__all__ = [
    "GMUClassifier",
    "GmuError",
    "Model",
    "encode_images",
    "encode_texts",
    "fit",
    "load",
]
__version__ = "0.1.0"

log = logging.getLogger("gmu")

ArrayLike = Any
PathLike = Union[str, "os.PathLike[str]"]
Image = Union[bytes, PathLike]


def _as_views(arrays: Mapping[str, ArrayLike], what: str) -> List[Tuple[str, np.ndarray]]:
    """`(name, float32 [n, d])` pairs, C-contiguous; a 1-D array is one column."""
    if not isinstance(arrays, Mapping) or not arrays:
        raise ValueError(f"invalid {what}: expected a dict of view name -> array [n, d], got {type(arrays).__name__}")
    out = []
    for name, x in arrays.items():
        if not isinstance(name, str):
            raise ValueError(f"invalid {what}: view names are strings, got {name!r}")
        try:
            a = np.asarray(x, dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise ValueError(f"invalid {what}: view '{name}' is not numeric ({e})") from None
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2:
            raise ValueError(f"invalid {what}: view '{name}' has shape {a.shape}; expected [rows, columns]")
        out.append((name, np.ascontiguousarray(a)))
    return out


class Model:
    """A trained gmu model: what `gmu.load` and `gmu.fit` return.

    Attributes: ``views`` (names, in the model's order), ``widths`` (columns
    per view), ``classes`` (class or label names: the probability columns),
    ``task`` (``"multiclass"`` or ``"multilabel"``), ``method`` (``gmu``,
    ``concat``, ``moe-maxout``, …), ``gated`` (whether it has gates),
    ``config`` (its ``config.json`` as a dict). A model from `gmu.fit` also
    has ``scores`` (dev and test evaluation) and ``history`` (per epoch).
    """

    def __init__(self, native: "_native.NativeModel", scores: Optional[dict] = None):
        self._native = native
        self.scores: Dict[str, Any] = {k: v for k, v in (scores or {}).items() if k != "history"}
        self.history: List[List[Dict[str, float]]] = (scores or {}).get("history", [])

    views = property(lambda self: list(self._native.views), doc="View names, in the model's order.")
    widths = property(lambda self: list(self._native.widths), doc="Columns of each view.")
    classes = property(lambda self: list(self._native.classes), doc="Class or label names (probability columns).")
    task = property(lambda self: self._native.task, doc='"multiclass" or "multilabel".')
    method = property(lambda self: self._native.method, doc="The fusion method's label.")
    gated = property(lambda self: self._native.gated, doc="Whether the model has gates (GMU, mixtures).")

    @property
    def config(self) -> dict:
        """The model's ``config.json``, as a dict."""
        return json.loads(self._native.config_json())

    def __repr__(self) -> str:
        views = ", ".join(f"{v}[{w}]" for v, w in zip(self.views, self.widths))
        return f"<gmu.Model {self.method} {self.task}, views {views}, {len(self.classes)} outputs>"

    def predict(
        self,
        views: Optional[Mapping[str, ArrayLike]] = None,
        *,
        texts: Optional[Sequence[str]] = None,
        images: Optional[Sequence[Image]] = None,
        importance: bool = True,
        impute: bool = False,
    ) -> Dict[str, Any]:
        """Predicts every row, with the gates behind each prediction.

        ``views`` maps view names to arrays ``[n, width]`` (float32 or
        float64; float64 is rounded to float32 as a file would be read). A row
        of NaN is a missing view of that row, and a view left out is missing
        in every row: the model's missing-view rules apply, as in
        ``gmu predict``. With ``impute=True``, partly missing rows are filled
        with the training means first. For a model trained on raw plots and
        posters, give ``texts`` (strings) and/or ``images`` (encoded bytes or
        file paths) instead; they go through the encoder the model records.

        Returns a dict of NumPy arrays, named as ``gmu predict``'s columns:

        - ``probabilities`` ``[n, C]`` float32 (columns: ``self.classes``);
        - ``predicted``: the class name of each row (``[n]`` str) or, for a
          multilabel model, the list of predicted label names of each row;
        - ``decisions`` ``[n, C]`` uint8, 1 where a class or label is predicted;
        - per view ``v``: ``present_v`` ``[n]`` bool, ``gate_v``,
          ``share_v`` and ``suspect_v`` (gated models; ``suspect_v`` where the
          model recorded its training gates), and with ``importance=True``
          ``importance_v`` and ``conflict_v`` (models of several views: how far the
          prediction from ``v`` alone is from the prediction without it, total
          variation in [0, 1]; it flags a misaligned view), float32 ``[n]``, NaN
          where the view is missing;
        - for raw inputs, ``unusable``: ``(view, row, input, reason)`` for
          each input that gave no features (it is a missing view of its row).
        """
        raw = texts is not None or images is not None
        if raw and views is not None:
            raise ValueError("invalid input: give views (feature arrays) or texts/images (raw inputs), not both")
        if raw:
            text_views, image_views = [], []
            for name, enc in zip(self.views, self._native.encoders):
                if enc is not None:
                    (text_views if enc[0] == "text" else image_views).append(name)
            pairs = {}
            for given, kind, found in [(texts, "texts", text_views), (images, "images", image_views)]:
                if given is None:
                    continue
                if len(found) != 1:
                    raise ValueError(
                        f"invalid {kind}: the model has {len(found)} views made from {kind} "
                        f"({', '.join(found) or 'none'}); raw {kind} need exactly one"
                    )
                if isinstance(given, (str, bytes)):
                    raise ValueError(f"invalid {kind}: expected a list, got one {type(given).__name__}")
                pairs[kind] = [(found[0], list(given))]
            d = self._native.predict_raw(pairs.get("texts", []), pairs.get("images", []), importance)
        else:
            given = dict(_as_views(views, "views"))
            unknown = [v for v in given if v not in self.views]
            if unknown:
                raise ValueError(
                    f"invalid views: the model has no view {', '.join(map(repr, unknown))} "
                    f"(it reads {', '.join(self.views)})"
                )
            n = next(iter(given.values())).shape[0]
            arrays = [
                (v, given[v] if v in given else np.full((n, w), np.nan, dtype=np.float32))
                for v, w in zip(self.views, self.widths)
            ]
            d = self._native.predict(arrays, importance, impute)
        return self._columns(d)

    def _columns(self, d: dict) -> Dict[str, Any]:
        names = np.asarray(self.classes)
        decisions = d["decisions"]
        out: Dict[str, Any] = {"probabilities": d["probabilities"]}
        if self.task == "multilabel":
            out["predicted"] = [list(names[row.astype(bool)]) for row in decisions]
        else:
            out["predicted"] = names[decisions.argmax(axis=1)]
        out["decisions"] = decisions
        for j, v in enumerate(self.views):
            out[f"present_{v}"] = d["present"][:, j]
            for key in ("gate", "share", "suspect", "importance", "conflict"):
                if key in d:
                    out[f"{key}_{v}"] = d[key][:, j]
        if "unusable" in d:
            out["unusable"] = d["unusable"]
        return out

    def save(self, path: PathLike) -> None:
        """Writes the model directory (``config.json`` and weights) that
        ``gmu predict --model`` and `gmu.load` read."""
        self._native.save(os.fspath(path))

    def export_onnx(self, path: PathLike) -> None:
        """Writes the model as an ONNX graph (what ``gmu export --format onnx``
        writes): one input per view, outputs ``probabilities`` and, for a
        gated model, ``gates``. The scalers are folded in; the missing-view
        rules are not in the graph."""
        self._native.export_onnx(os.fspath(path))


def load(path: PathLike) -> Model:
    """Loads a model directory written by any gmu training command
    (``gmu multiview``, ``gmu mmimdb``, ``gmu train``) or by `Model.save`.

    Raises ``FileNotFoundError`` if it is not there and ``gmu.GmuError`` if
    its files are damaged (bad checksum, non-finite weights, unknown format).
    """
    return Model(_native.load(os.fspath(path)))


def _targets(labels: ArrayLike, label_names: Optional[Sequence[str]]):
    """(names, class index per row or None, 0/1 matrix or None)."""
    if isinstance(labels, np.ndarray) and labels.ndim == 2:
        y = labels
        if not np.isin(y, (0, 1)).all():
            raise ValueError("invalid labels: a 2-D label matrix holds only 0 and 1")
        names = list(label_names) if label_names is not None else [str(j) for j in range(y.shape[1])]
        return names, None, np.ascontiguousarray(y, dtype=np.uint8)
    seq = list(labels)
    if seq and all(isinstance(r, (list, tuple, set, frozenset)) for r in seq):
        names = list(label_names) if label_names is not None else sorted({str(l) for r in seq for l in r})
        index = {n: j for j, n in enumerate(names)}
        y = np.zeros((len(seq), len(names)), dtype=np.uint8)
        for i, r in enumerate(seq):
            for l in r:
                if str(l) not in index:
                    raise ValueError(f"invalid labels: row {i} has label {l!r}, not among label_names")
                y[i, index[str(l)]] = 1
        return names, None, y
    y = np.asarray(seq)
    if y.ndim != 1:
        raise ValueError(f"invalid labels: shape {y.shape}; expected [n] classes or a [n, L] 0/1 matrix")
    classes, codes = np.unique(y, return_inverse=True)
    names = [str(c) for c in classes]
    if label_names is not None:
        names = list(label_names)
        index = {n: j for j, n in enumerate(names)}
        missing = [str(c) for c in classes if str(c) not in index]
        if missing:
            raise ValueError(f"invalid labels: {', '.join(missing)} not among label_names")
        codes = np.array([index[str(c)] for c in y])
    return names, np.ascontiguousarray(codes, dtype=np.int64), None


def fit(
    views: Mapping[str, ArrayLike],
    labels: ArrayLike,
    *,
    fusion: str = "gmu",
    out: Optional[PathLike] = None,
    dev: float = 0.2,
    test: float = 0.0,
    label_names: Optional[Sequence[str]] = None,
    callback: Optional[Callable[[Dict[str, float]], Any]] = None,
    **options: Any,
) -> Model:
    """Trains one fusion model on ``views`` (name -> array ``[n, width]``).

    ``labels``: one class per row (any values; the class names are their
    sorted ``str``), or a 0/1 matrix ``[n, L]``, or one list of label names
    per row (multilabel). ``dev`` and ``test`` are the held-out shares of
    each class: dev for early stopping, test for a score in ``model.scores``.
    ``options`` are ``gmu multiview``'s training flags with ``_`` for ``-``
    and the same defaults: ``head="maxout"``, ``hidden=128``, ``lr=1e-3``,
    ``dropout=0.5``, ``max_norm=10``, ``batch_size=64``, ``epochs=100``,
    ``patience=10``, ``threshold=0.5``, ``modality_dropout=0``,
    ``view_noise=0`` (with ``noise_kind="mixed"``, ``noise_sigma=(0.5, 4)``,
    ``gate_supervision=0``, ``gate_supervision_clean=0``),
    ``impute=False``, ``experts="maxout"``, ``tied_gates=False``,
    ``gate_softmax=False``, ``gate_hidden=0``, ``gate_per_view=False``,
    ``engine="auto"``, ``seed=0``. ``fusion`` is one
    of ``gmu``, ``concat``, ``linear-sum``, ``avg-probs``, ``moe``. An
    unknown option or a bad value raises ``ValueError``.

    Each epoch is logged to the ``gmu`` logger (INFO) and passed to
    ``callback({"member", "epoch", "train_loss", "dev_macro_f1"})``; an
    exception in the callback (or ctrl-c) stops the training and is raised.
    With ``out``, the model directory is written there.
    """
    pairs = _as_views(views, "views")
    names, y_classes, y_labels = _targets(labels, label_names)
    n = pairs[0][1].shape[0]
    count = len(y_classes) if y_classes is not None else y_labels.shape[0]
    if count != n:
        raise ValueError(f"invalid labels: {count} labels for {n} rows")
    config = json.dumps(dict(options, fusion=fusion))

    def on_epoch(member: int, epoch: int, train_loss: float, dev_macro_f1: float) -> None:
        record = {"member": member, "epoch": epoch, "train_loss": train_loss, "dev_macro_f1": dev_macro_f1}
        log.info("member %d epoch %d: train loss %.4f, dev macro-F1 %.4f", member, epoch, train_loss, dev_macro_f1)
        if callback is not None:
            callback(record)

    native, scores = _native.fit(pairs, names, y_classes, y_labels, config, dev, test, on_epoch)
    model = Model(native, json.loads(scores))
    for split, score in model.scores.items():
        log.info("%s: accuracy %.4f, macro-F1 %.4f", split, score.get("accuracy", float("nan")),
                 score.get("f1", {}).get("macro", float("nan")))
    if out is not None:
        model.save(out)
    return model


def encode_texts(texts: Sequence[str], encoder: str = "minilm") -> Tuple[np.ndarray, List[Tuple[int, str, str]]]:
    """Features of ``texts`` from a fetched pretrained text encoder
    (``minilm``: all-MiniLM-L6-v2, 384-d; ``glove``: averaged GloVe, 50-d),
    the numbers ``gmu encode`` writes. Returns float32 ``[n, dim]`` (a NaN row
    for a text that gives none, e.g. an empty one) and ``(row, text, reason)``
    for each such row. Run ``gmu encoders fetch`` once first."""
    if isinstance(texts, str):
        raise ValueError("invalid texts: expected a list of strings, got one string")
    return _native.encode_texts(list(texts), encoder)


def encode_images(images: Sequence[Image], encoder: str = "effnet-lite0") -> Tuple[np.ndarray, List[Tuple[int, str, str]]]:
    """Features of ``images`` (encoded JPEG/PNG bytes or file paths) from the
    fetched EfficientNet-Lite0 (1280-d), the numbers ``gmu encode`` writes.
    Returns float32 ``[n, 1280]`` (a NaN row for an image that cannot be
    decoded) and ``(row, input, reason)`` for each such row."""
    if isinstance(images, (str, bytes)):
        raise ValueError("invalid images: expected a list of bytes or paths, got one")
    return _native.encode_images([i if isinstance(i, bytes) else os.fspath(i) for i in images], encoder)


def __getattr__(name: str) -> Any:
    # The scikit-learn estimator is built on first use, so `import gmu` does not import
    # scikit-learn (about 0.6 s) for users who never touch it.
    if name == "GMUClassifier":
        from .estimator import GMUClassifier

        return GMUClassifier
    raise AttributeError(f"module 'gmu' has no attribute {name!r}")
