"""A fitted NGBoost categorical model as plain arrays, and a numpy predictor for it.

NGBoost's `k_categorical(K)` has K-1 parameters per row: the logits of classes 1..K-1
(class 0's logit is fixed at 0). A prediction starts from the marginal fit (`init_params`)
and, for each boosting stage s, subtracts `learning_rate * tree_sp(x) * scaling_s` from
parameter p, where `tree_sp` is the stage's regression tree for p; the class probabilities
are the softmax of the K logits. `Ensemble` holds exactly that: the initial parameters,
the stage scalings, the learning rate and every tree's node arrays (scikit-learn's
`tree_.children_left/right`, `feature` mapped to the full feature order, `threshold`, leaf
`value`, `missing_go_to_left`).

Traversal is scikit-learn's (`Tree._apply_dense`): rows are cast to float32; at an inner
node a NaN goes where `missing_go_to_left` says, otherwise left when `x <= threshold`
(float32 compared in double precision). Every arithmetic step follows NGBoost's
`pred_param` and scipy's `softmax` in the same order, so the probabilities equal NGBoost's
own `predict_proba`.

Storage: `trees.npz`, written with a fixed zip timestamp (same model, same bytes) and read
with `allow_pickle=False`, then checked (dtypes, shapes, child links pointing forward inside
their tree, feature indices in range) before any prediction uses it.
"""

from __future__ import annotations

import io as stdio
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from alphafactory.errors import ModelError

TREES_FILE = "trees.npz"
_EPOCH = (1980, 1, 1, 0, 0, 0)
#: Row × tree cells traversed at once (bounds the traversal's scratch memory).
_CELLS = 1 << 21
#: Array name -> numpy dtype kind and number of dimensions.
_LAYOUT: dict[str, tuple[str, int]] = {
    "init_params": ("f", 1),
    "scalings": ("f", 1),
    "learning_rate": ("f", 0),
    "tree_offsets": ("i", 1),
    "children_left": ("i", 1),
    "children_right": ("i", 1),
    "feature": ("i", 1),
    "threshold": ("f", 1),
    "value": ("f", 1),
    "missing_go_to_left": ("u", 1),
    "importance": ("f", 1),
}


@dataclass(frozen=True)
class Ensemble:
    """NGBoost's prediction as arrays. Trees are ordered stage by stage, parameter by
    parameter (tree `s * n_params + p`); node arrays are the trees' nodes concatenated,
    tree t owning nodes `tree_offsets[t]:tree_offsets[t + 1]`, child indices local to
    their tree (-1 at a leaf), `feature` a column of the full feature matrix (-1 at a leaf).
    `importance`: each feature's squared-error reduction per training row, summed over all
    trees (scikit-learn's unnormalised `feature_importances_`)."""

    init_params: np.ndarray
    scalings: np.ndarray
    learning_rate: float
    tree_offsets: np.ndarray
    children_left: np.ndarray
    children_right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    value: np.ndarray
    missing_go_to_left: np.ndarray
    importance: np.ndarray

    @property
    def n_params(self) -> int:
        return len(self.init_params)

    @property
    def n_stages(self) -> int:
        return len(self.scalings)

    def predict_params(self, features: np.ndarray) -> np.ndarray:
        """Distribution parameters (rows × n_params), as NGBoost's `pred_param` gives them."""
        features = np.asarray(features, dtype=np.float32)
        rows, n_params = len(features), self.n_params
        params = np.ones((rows, n_params)) * self.init_params
        leaves = self.leaf_values(features)
        for stage in range(self.n_stages):
            resids = leaves[:, stage * n_params : (stage + 1) * n_params]
            params -= self.learning_rate * resids * float(self.scalings[stage])
        return params

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities (rows × n_params + 1): scipy's softmax of (0, params)."""
        params = self.predict_params(features)
        logits = np.zeros((self.n_params + 1, len(params)))
        logits[1:, :] = params.T
        shifted = np.exp(logits - np.max(logits, axis=0, keepdims=True))
        return (shifted / np.sum(shifted, axis=0, keepdims=True)).T

    def leaf_values(self, features: np.ndarray) -> np.ndarray:
        """Each tree's prediction for each row (rows × trees)."""
        starts = self.tree_offsets[:-1]
        shift = np.repeat(starts, np.diff(self.tree_offsets))
        left, right = self.children_left + shift, self.children_right + shift  # global ids
        out = np.empty((len(features), len(starts)))
        step = max(1, _CELLS // max(1, len(starts)))
        for first in range(0, len(features), step):
            chunk = features[first : first + step]
            out[first : first + step] = self._traverse(chunk, starts, left, right)
        return out

    def _traverse(
        self, features: np.ndarray, starts: np.ndarray, left: np.ndarray, right: np.ndarray
    ) -> np.ndarray:
        """scikit-learn's `_apply_dense` for every (row, tree) pair at once, level by level."""
        inner = self.children_left >= 0
        node = np.broadcast_to(starts, (len(features), len(starts))).copy()
        row = np.arange(len(features))[:, None]
        for _ in range(len(self.value)):  # each step moves every row one level down
            deep = inner[node]
            if not deep.any():
                break
            x = features[row, np.where(deep, self.feature[node], 0)]
            go_left = np.where(
                np.isnan(x), self.missing_go_to_left[node], x <= self.threshold[node]
            )
            node = np.where(deep, np.where(go_left, left[node], right[node]), node)
        return self.value[node]

    def to_bytes(self) -> bytes:
        """The `.npz` bytes (fixed timestamps, no pickled objects)."""
        buffer = stdio.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
            for name in _LAYOUT:
                array = np.asarray(getattr(self, name), order="C")
                if array.dtype == np.bool_:
                    array = array.astype(np.uint8)
                info = zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH)
                with archive.open(info, "w") as member:
                    np.lib.format.write_array(member, array, allow_pickle=False)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, payload: bytes, n_features: int) -> Ensemble:
        """Read and check `.npz` bytes written by `to_bytes`; anything else is a ModelError."""
        try:
            with np.load(stdio.BytesIO(payload), allow_pickle=False) as archive:
                if not isinstance(archive, np.lib.npyio.NpzFile):
                    raise ValueError("not an .npz archive")
                if set(archive.files) != set(_LAYOUT):
                    raise ValueError(f"arrays {sorted(archive.files)}, expected {sorted(_LAYOUT)}")
                arrays = {name: archive[name] for name in _LAYOUT}
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            raise ModelError(
                f"ngboost bundle: {TREES_FILE} is not an NGBoost tree archive ({exc}); retrain it"
            ) from None
        for name, (kind, ndim) in _LAYOUT.items():
            if arrays[name].dtype.kind != kind or arrays[name].ndim != ndim:
                _refuse(f"array {name} has dtype {arrays[name].dtype}, {arrays[name].ndim} dims")
        ensemble = cls(
            init_params=arrays["init_params"].astype(np.float64),
            scalings=arrays["scalings"].astype(np.float64),
            learning_rate=float(arrays["learning_rate"]),
            tree_offsets=arrays["tree_offsets"].astype(np.int64),
            children_left=arrays["children_left"].astype(np.int64),
            children_right=arrays["children_right"].astype(np.int64),
            feature=arrays["feature"].astype(np.int64),
            threshold=arrays["threshold"].astype(np.float64),
            value=arrays["value"].astype(np.float64),
            missing_go_to_left=arrays["missing_go_to_left"].astype(bool),
            importance=arrays["importance"].astype(np.float64),
        )
        ensemble.check(n_features)
        return ensemble

    def check(self, n_features: int) -> None:
        """Refuse arrays a traversal could loop on or index out of range with."""
        offsets, n_nodes = self.tree_offsets, len(self.value)
        if not (self.n_params >= 1 and np.all(np.isfinite(self.init_params))):
            _refuse("init_params must be finite, at least one")
        if not (np.all(np.isfinite(self.scalings)) and np.isfinite(self.learning_rate)):
            _refuse("scalings and learning_rate must be finite")
        if len(offsets) != self.n_stages * self.n_params + 1 or offsets[0] != 0:
            _refuse(f"{len(offsets) - 1} trees for {self.n_stages} stages × {self.n_params}")
        if offsets[-1] != n_nodes or np.any(np.diff(offsets) < 1):
            _refuse("tree_offsets must rise from 0 to the node count")
        arrays = (self.children_left, self.children_right, self.feature, self.threshold)
        if any(len(a) != n_nodes for a in (*arrays, self.missing_go_to_left)):
            _refuse("node arrays differ in length")
        if len(self.importance) != n_features:
            _refuse(f"importance has {len(self.importance)} entries for {n_features} features")
        local = np.arange(n_nodes) - np.repeat(offsets[:-1], np.diff(offsets))
        size = np.repeat(np.diff(offsets), np.diff(offsets))
        leaf = self.children_left < 0
        inner = ~leaf
        forward = (self.children_left > local) & (self.children_right > local)
        inside = (self.children_left < size) & (self.children_right < size)
        if np.any(leaf & ((self.children_left != -1) | (self.children_right != -1))):
            _refuse("a leaf has a child")
        if np.any(inner & ~(forward & inside)):
            _refuse("a child link points backwards or outside its tree")
        if np.any(inner & ((self.feature < 0) | (self.feature >= n_features))):
            _refuse(f"a split uses a feature outside 0..{n_features - 1}")
        # A NaN threshold is legitimate: scikit-learn writes one for a split of "missing vs
        # the rest" on a column whose other values are all equal; `x <= NaN` is false, so
        # every present value goes right, as in scikit-learn's own traversal.
        if not np.all(np.isfinite(self.value)):
            _refuse("leaf values must be finite")


def _refuse(problem: str) -> None:
    raise ModelError(f"ngboost bundle: {TREES_FILE} is malformed ({problem}); retrain the model")


def from_ngboost(model: Any, n_stages: int, n_features: int) -> Ensemble:
    """The first `n_stages` stages of a fitted `NGBClassifier` with tree base learners."""
    n_params = int(model.Manifold.n_params)
    offsets, left, right, feature, threshold, value, missing = [0], [], [], [], [], [], []
    importance = np.zeros(n_features)
    for learners, columns in zip(
        model.base_models[:n_stages], model.col_idxs[:n_stages], strict=True
    ):
        columns = np.asarray(columns, dtype=np.int64)
        if len(learners) != n_params:
            raise ModelError(f"ngboost: a stage has {len(learners)} trees, expected {n_params}")
        for learner in learners:
            tree = learner.tree_
            lo, hi = tree.children_left, tree.children_right
            inner = lo >= 0
            feat = np.full(tree.node_count, -1, dtype=np.int64)
            feat[inner] = columns[tree.feature[inner]]  # the stage saw only `columns`
            weighted, impurity = tree.weighted_n_node_samples, tree.impurity
            gain = weighted * impurity
            gain[inner] -= gain[lo[inner]] + gain[hi[inner]]
            # scikit-learn's unnormalised `feature_importances_`: per row of the tree's batch
            np.add.at(importance, feat[inner], gain[inner] / weighted[0])
            left.append(lo.astype(np.int64))
            right.append(hi.astype(np.int64))
            feature.append(feat)
            threshold.append(tree.threshold.astype(np.float64))
            value.append(tree.value.reshape(tree.node_count, -1)[:, 0].astype(np.float64))
            missing.append(np.asarray(tree.missing_go_to_left, dtype=np.uint8))
            offsets.append(offsets[-1] + tree.node_count)
    ensemble = Ensemble(
        init_params=np.asarray(model.init_params, dtype=np.float64).reshape(-1),
        scalings=np.asarray(model.scalings[:n_stages], dtype=np.float64),
        learning_rate=float(model.learning_rate),
        tree_offsets=np.asarray(offsets, dtype=np.int64),
        children_left=np.concatenate(left),
        children_right=np.concatenate(right),
        feature=np.concatenate(feature),
        threshold=np.concatenate(threshold),
        value=np.concatenate(value),
        missing_go_to_left=np.concatenate(missing).astype(bool),
        importance=importance,
    )
    ensemble.check(n_features)
    return ensemble
