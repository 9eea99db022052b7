"""Supervised classifier plus novelty detector: known attacks by the MLP, unseen ones by the autoencoder.

A classifier only recognises the attacks it was trained on; the 17 attack names of NSL-KDD's test set that
never occur in training are mostly missed by it. An autoencoder trained on normal rows flags whatever does
not look normal, known or not. :class:`HybridFlowModel` says "attack" when either does. The autoencoder's
threshold is the target false-alarm rate ``novelty_far`` on normal training rows that it did not train on
(split-conformal rule), so no test row sets anything. It is a registered, supervised detector (``mlp+ae``,
tag ``requires_y``): ``fit(X, y)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Literal, Self, overload

import numpy as np
from numpy.typing import NDArray

from vigil.base import BaseDetector, Interval
from vigil.calibration.thresholds import TargetFARThreshold
from vigil.errors import InvalidInputError, NotFittedError
from vigil.network.autoencoder import FlowAutoencoderDetector
from vigil.network.classifier import FlowClassifier
from vigil.registry import register
from vigil.validation import check_array

__all__ = ["NOVEL", "HybridFlowModel"]

NOVEL = "novel"
"""Category given to rows flagged by the novelty detector alone."""


_PARTS = ("classifier", "novelty")


@register("mlp+ae", "Supervised MLP or'd with an autoencoder novelty detector, fit(X, y): known and unseen attacks")
class HybridFlowModel(BaseDetector):
    """Attack if the classifier says so *or* the autoencoder's error exceeds its normal-data threshold.

    Parameters
    ----------
    classifier : FlowClassifier or None
        Trained (a clone) on all training rows; None: ``FlowClassifier()``.
    novelty : FlowAutoencoderDetector or None
        Trained (a clone) on the normal training rows outside the calibration share; None: its defaults.
        A part whose ``random_state`` is None is seeded with this model's.
    novelty_far : float
        Target false-alarm rate of the novelty detector on held-out normal training rows.
    calibration : float
        Share of the normal training rows held out to set the novelty threshold.
    random_state : int or None

    Attributes
    ----------
    classifier_, novelty_ : the fitted parts
    novelty_threshold_ : float
    calibration_scores_ : numpy.ndarray
        Novelty scores of the held-out normal rows (to re-derive thresholds for other FAR targets).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(400, 3))
    >>> y = X[:, 0] > 1.0
    >>> model = HybridFlowModel(
    ...     classifier=FlowClassifier(hidden=(8,), epochs=20, batch_size=32, random_state=0, n_threads=1),
    ...     novelty=FlowAutoencoderDetector(hidden=(4,), latent=2, epochs=20, batch_size=32, random_state=0),
    ...     random_state=0,
    ... ).fit(X, y)
    >>> model.predict(np.array([[3.0, 0.0, 0.0], [0.0, 0.0, 0.0], [-1.0, 9.0, -9.0]])).tolist()
    [True, False, True]
    >>> model.predict_category(np.array([[-1.0, 9.0, -9.0]])).tolist()
    ['novel']
    """

    requires_y = True
    classifier_: FlowClassifier
    novelty_: FlowAutoencoderDetector
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "classifier": [None, FlowClassifier],
        "novelty": [None, FlowAutoencoderDetector],
        "novelty_far": [Interval(float, 0.0, 1.0, closed="neither")],
        "calibration": [Interval(float, 0.0, 0.5, closed="neither")],
    }

    def __init__(
        self,
        *,
        classifier: FlowClassifier | None = None,
        novelty: FlowAutoencoderDetector | None = None,
        novelty_far: float = 0.05,
        calibration: float = 0.1,
        random_state: int | None = None,
    ) -> None:
        self.classifier = classifier
        self.novelty = novelty
        self.novelty_far = novelty_far
        self.calibration = calibration
        self.random_state = random_state

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [
            {
                "classifier": FlowClassifier(hidden=(8,), epochs=20, batch_size=32, random_state=0, n_threads=1),
                "novelty": FlowAutoencoderDetector(hidden=(4,), latent=2, epochs=20, batch_size=32, n_threads=1),
                "random_state": 0,
            }
        ]

    def _min_fit_rows(self) -> int:
        return 4

    @overload
    def _part(self, name: Literal["classifier"]) -> FlowClassifier: ...
    @overload
    def _part(self, name: Literal["novelty"]) -> FlowAutoencoderDetector: ...
    @overload
    def _part(self, name: str) -> BaseDetector: ...
    def _part(self, name: str) -> BaseDetector:
        """An unfitted copy of the part ``name`` (its defaults where None); one without a seed of its own gets
        this model's ``random_state``, so that the model's seed fixes its scores."""
        given = getattr(self, name)
        part = (FlowClassifier() if name == "classifier" else FlowAutoencoderDetector()) if given is None else given
        seed = self.random_state if part.random_state is None else part.random_state
        return part.clone().set_params(random_state=seed)

    def fit(self, X: Any, y: Any = None, category: Any = None) -> Self:
        """Fit the classifier on all rows and the novelty detector on normal rows; set its threshold."""
        values = self._start_fit(X)
        self._fit(values, self._check_labels(y, len(values)), category)
        return self._finish_fit(values)

    def _training_threshold(self, scores: NDArray[np.float64]) -> float:
        return 0.5  # where score_samples puts both parts' decision points

    def _fit(self, values: NDArray[np.float64], y: Any, category: Any = None) -> None:
        normal = np.flatnonzero(~y)
        rng = self._rng()
        held = rng.choice(normal, size=max(2, round(self.calibration * len(normal))), replace=False)
        fit_rows = np.setdiff1d(normal, held)
        self.classifier_ = self._part("classifier").fit(values, y, category)
        self.novelty_ = self._part("novelty").fit(values[fit_rows])
        self.calibration_rows_ = np.sort(held)
        self.calibration_scores_ = self.novelty_._checked_scores(values[self.calibration_rows_])
        self.novelty_threshold_ = self.threshold_for(self.novelty_far)

    def select_novelty_far(
        self,
        X: Any,
        y: Any,
        category: Any,
        *,
        candidates: Sequence[float] = (0.01, 0.02, 0.05, 0.1),
        log: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        """Choose ``novelty_far`` on the training rows only, by leaving each attack category out in turn.

        The novelty detector exists for attacks the classifier never saw. To measure that without test
        data, each attack category of the training rows (``category``) is held out once: a fresh classifier
        (same parameters) trains on the other rows minus the calibration rows, and the hybrid, with each
        candidate target, is scored on the held-out category (all attacks, all "unseen") and on the
        calibration rows (normal, seen by neither network). The candidate with the best balanced accuracy
        (mean of the normal rows' specificity and the held-out attacks' recall), averaged over categories,
        becomes ``novelty_far`` and sets the threshold; ties go to the smaller target. Call after :meth:`fit`
        with the same rows.

        Returns
        -------
        dict
            ``chosen``, ``by_far`` (mean balanced accuracy per candidate) and ``per_category``.
        """
        if not hasattr(self, "calibration_rows_"):
            msg = "HybridFlowModel is not fitted yet: call fit() first"
            raise NotFittedError(msg)
        values, _ = check_array(X, where="X")
        y_bool = np.asarray(y, dtype=bool)
        categories = np.asarray(category, dtype=object)
        if categories.shape != y_bool.shape or y_bool.shape != (len(values),):
            msg = f"X, y and category must have one entry per row ({len(values)})"
            raise InvalidInputError(msg)
        held = self.calibration_rows_
        kinds = sorted({str(c) for c in categories[y_bool]})
        if len(kinds) < 2:
            msg = "selecting novelty_far needs at least two attack categories to leave out in turn"
            raise InvalidInputError(msg)
        novelty_normal = self.calibration_scores_
        per_category: dict[str, dict[str, float]] = {}
        for kind in kinds:
            out = y_bool & (categories == kind)
            train = np.ones(len(values), dtype=bool)
            train[held] = False
            train &= ~out
            if log is not None:
                log(f"leaving out {kind} ({int(out.sum())} rows): training a classifier on {int(train.sum())} rows")
            clf = self.classifier_.clone()
            clf.fit(values[train], y_bool[train], categories[train])
            proba_out = clf.predict_proba(values[out]) > clf.threshold
            proba_normal = clf.predict_proba(values[held]) > clf.threshold
            novelty_out = self.novelty_.score_samples(values[out])
            per_category[kind] = {}
            for far in candidates:
                limit = self.threshold_for(far)
                recall = float(np.mean(proba_out | (novelty_out > limit)))
                specificity = float(np.mean(~(proba_normal | (novelty_normal > limit))))
                per_category[kind][str(far)] = 0.5 * (recall + specificity)
        by_far = {str(far): float(np.mean([per_category[k][str(far)] for k in kinds])) for far in candidates}
        best = max(by_far.values())
        chosen = min(far for far in candidates if by_far[str(far)] >= best - 1e-12)
        self.novelty_far = chosen
        self.novelty_threshold_ = self.threshold_for(chosen)
        return {"chosen": chosen, "by_far": by_far, "per_category": per_category}

    def threshold_for(self, far: float) -> float:
        """The novelty threshold for another target false-alarm rate, from the same calibration scores."""
        if not hasattr(self, "calibration_scores_"):
            msg = "HybridFlowModel is not fitted yet: call fit() first"
            raise NotFittedError(msg)
        return TargetFARThreshold(far=far).fit(self.calibration_scores_).threshold_

    def _parts(self, values: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        return self.classifier_._checked_scores(values), self.novelty_._checked_scores(values)

    def scores(self, X: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(classifier P(attack), novelty score) of each row."""
        return self._parts(self._prepare(X))

    def _score(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        """One number per row for ROC curves: max of P(attack) and the novelty score over its threshold, squashed.

        Both parts map to [0, 1) with 0.5 at their decision point, so ``score > 0.5`` equals :meth:`predict`.
        """
        proba, novelty = self._parts(values)
        ratio = novelty / max(self.novelty_threshold_, 1e-12)
        return np.maximum(proba * (0.5 / self.classifier_.threshold_), ratio / (1.0 + ratio))

    def predict(self, X: Any) -> NDArray[np.bool_]:
        """True for rows the classifier or the novelty detector flags (each by its own threshold, exactly)."""
        proba, novelty = self.scores(X)
        return (proba > self.classifier_.threshold_) | (novelty > self.novelty_threshold_)

    def predict_category(self, X: Any) -> NDArray[np.object_]:
        """The classifier's category, or :data:`NOVEL` where only the novelty detector fired."""
        values = self._prepare(X)
        proba, novelty = self._parts(values)
        category = self.classifier_.predict_category(values)
        novel = (proba <= self.classifier_.threshold_) & (novelty > self.novelty_threshold_)
        return np.where(novel, NOVEL, category).astype(object)

    # ------------------------------------------------------------------ persistence: each part's own state
    def _learned_state(self) -> dict[str, Any]:
        state = {k: v for k, v in vars(self).items() if k.endswith("_") and k.rstrip("_") not in _PARTS}
        for name in _PARTS:
            state.update({f"{name}:{k}": v for k, v in getattr(self, name + "_")._learned_state().items()})
        return state

    def _restore_state(self, state: dict[str, Any]) -> None:
        for name in _PARTS:
            part = self._part(name)
            part._restore_state({k.split(":", 1)[1]: v for k, v in state.items() if k.startswith(name + ":")})
            setattr(self, name + "_", part)
        super()._restore_state({k: v for k, v in state.items() if ":" not in k})
