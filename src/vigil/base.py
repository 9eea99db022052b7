"""The detector contract: scikit-learn's estimator rules plus River's one-at-a-time learners.

* ``__init__`` takes keyword-only arguments and stores them unchanged; ``fit`` validates them against
  ``_parameter_constraints``, learns attributes whose names end in ``_`` and returns ``self``.
* ``score_samples`` returns one finite score per row, higher meaning more anomalous, and changes nothing.
* ``predict`` is ``score_samples(X) > threshold_``; ``threshold_`` is the training-score quantile at
  ``1 - contamination``. A :class:`~vigil.pipeline.Pipeline` replaces it with a calibrated threshold.
* ``save``/``load`` write and read a directory of JSON and ``.npz`` (see :mod:`vigil.persistence`).
* Supervised detectors (tag ``requires_y``) learn from labels too: ``fit(X, y)``, ``y`` True for anomalies.
* A renamed parameter stays accepted under its old name for one release (``_renamed_params``), with a
  ``DeprecationWarning``; saved files that hold the old name keep loading after that.

Subclasses implement ``_fit(values, y)`` and ``_score(values)`` on validated float64 arrays, and may
override ``_contributions(values)``; the public methods wrap them with validation. A detector whose score is
built from per-feature terms overrides ``_score_and_contributions(values)`` too, so that
:meth:`BaseDetector.score_with_contributions` explains a batch from the pass that scored it.
"""

from __future__ import annotations

import copy
import inspect
import numbers
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self, cast

import numpy as np
from numpy.typing import NDArray

from vigil.errors import InvalidInputError, ModelFormatError, NotWarmError, NumericalError
from vigil.persistence import FORMAT_VERSION, read_state, split_state, write_state
from vigil.validation import check_array, check_features, check_fitted, check_record

__all__ = [
    "BaseDetector",
    "Interval",
    "OnlineDetector",
    "Options",
    "RawContributions",
    "ScoredRows",
    "as_shares",
    "satisfies",
]

#: Row indices → those rows' raw (unnormalised) per-feature contributions.
RawContributions = Callable[[NDArray[np.intp]], NDArray[np.float64]]


class Interval:
    """A numeric parameter constraint: ``Interval(float, 0, 0.5, closed="right")`` means 0 < v ≤ 0.5."""

    def __init__(self, kind: type, low: float | None, high: float | None, *, closed: str = "both") -> None:
        self.kind, self.low, self.high, self.closed = kind, low, high, closed

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        if self.kind is int and not isinstance(value, numbers.Integral):
            return False
        left_closed = self.closed in ("both", "left")
        right_closed = self.closed in ("both", "right")
        # numbers.Real declares only < and <=, yet every real number compares with a float as a float does.
        number = cast(float, value)
        if self.low is not None and (number < self.low if left_closed else number <= self.low):
            return False
        return not (self.high is not None and (number > self.high if right_closed else number >= self.high))

    def __repr__(self) -> str:
        left = "[" if self.closed in ("both", "left") else "("
        right = "]" if self.closed in ("both", "right") else ")"
        low = "-inf" if self.low is None else self.low
        high = "inf" if self.high is None else self.high
        return f"{self.kind.__name__} in {left}{low}, {high}{right}"


class Options:
    """A parameter constraint accepting one of a fixed set of values."""

    def __init__(self, *values: Any) -> None:
        self.values = values

    def accepts(self, value: Any) -> bool:
        return any(value == v and type(value) is type(v) for v in self.values)

    def __repr__(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


def satisfies(constraint: Any, value: Any) -> bool:
    """True when ``value`` meets one of a parameter's constraints: ``None``, a type, an Interval or Options."""
    if constraint is None:
        return value is None
    if isinstance(constraint, (Interval, Options)):
        return constraint.accepts(value)
    if isinstance(constraint, type):
        return isinstance(value, constraint) and not (constraint is not bool and isinstance(value, bool))
    if callable(constraint):
        return bool(constraint(value))
    msg = f"unknown constraint {constraint!r}"
    raise TypeError(msg)


def as_shares(raw: Any) -> NDArray[np.float64]:
    """Absolute contributions normalised to rows summing to 1 (equal shares where a row is all zero)."""
    values = np.abs(np.asarray(raw, dtype=np.float64))
    totals = values.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, values / np.where(totals > 0, totals, 1.0), 1.0 / values.shape[1])


@dataclass(frozen=True)
class ScoredRows:
    """The scores of a batch and, on request, the feature shares of any of its rows, from the same pass.

    ``contributions(rows)`` reuses what scoring computed (a network's per-sensor errors, PCA's residuals),
    so a flagged row is explained without going through the model a second time; detectors without such
    terms compute the shares of just the rows asked for.
    """

    scores: NDArray[np.float64]
    _shares: Callable[[NDArray[np.intp]], NDArray[np.float64]]

    def contributions(self, rows: Any = None) -> NDArray[np.float64]:
        """Shares (rows summing to 1) of the batch rows ``rows`` (indices or a mask; all rows when None)."""
        index = np.arange(len(self.scores))
        return self._shares(index if rows is None else index[rows])


class BaseDetector:
    """Base class of every batch detector.

    Parameters
    ----------
    contamination : float
        Expected share of anomalies in the training data; sets ``threshold_``.
    random_state : int or None
        Seed of the ``numpy.random.Generator`` created in ``fit``.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    #: Supervised: ``fit`` needs labels ``y``, and refuses to run without them.
    requires_y: ClassVar[bool] = False
    #: Old parameter name → new one, accepted by ``__init__(**renamed)`` and ``set_params`` with a warning.
    _renamed_params: ClassVar[dict[str, str]] = {}
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "contamination": [Interval(float, 0.0, 0.5, closed="right")],
        "random_state": [None, Interval(int, 0, None)],
    }

    def __init__(self, *, contamination: float = 0.01, random_state: int | None = None) -> None:
        self.contamination = contamination
        self.random_state = random_state

    # ------------------------------------------------------------------ parameters
    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return sorted(p.name for p in signature.parameters.values() if p.name != "self" and p.kind == p.KEYWORD_ONLY)

    def get_params(self) -> dict[str, Any]:
        """Return the constructor parameters as a new dict."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Self:
        """Set constructor parameters; unknown names raise ``InvalidInputError``."""
        valid = self._param_names()
        for key, value in params.items():
            if key in self._renamed_params:
                self._take_renamed({key: value})
            elif key not in valid:
                msg = f"{type(self).__name__} has no parameter {key!r}; valid: {valid}"
                raise InvalidInputError(msg)
            else:
                setattr(self, key, value)
        return self

    @classmethod
    def params_from_json(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` read from JSON (a saved model, ``--param``) back to what ``__init__`` takes: the tuple
        type of parameters whose default is a tuple (JSON has none), a detector parameter (a hybrid's parts)
        from its registered name and parameters, and renamed parameters under their new names (silently: a
        saved file is not the user's code to change)."""
        from vigil.registry import detector_class

        defaults = {p.name: p.default for p in inspect.signature(cls.__init__).parameters.values()}
        out = {}
        for old, value in params.items():
            key = cls._renamed_params.get(old, old)
            if isinstance(value, dict) and "detector" in value:
                inner = detector_class(str(value["detector"]))
                value = inner(**inner.params_from_json(dict(value.get("params", {}))))
            elif isinstance(defaults.get(key), tuple) and isinstance(value, list):
                value = tuple(value)
            out[key] = value
        return out

    def _take_renamed(self, renamed: dict[str, Any]) -> None:
        """Store parameters given under an old name (``__init__``'s ``**renamed``) under the new one, warning."""
        for old, value in renamed.items():
            new = self._renamed_params.get(old)
            if new is None:
                msg = f"{type(self).__name__}() got an unexpected keyword argument {old!r}"
                raise TypeError(msg)
            msg = f"{type(self).__name__}: parameter {old!r} is deprecated and goes in the next release; use {new!r}"
            warnings.warn(msg, DeprecationWarning, stacklevel=3)
            setattr(self, new, value)

    def clone(self) -> Self:
        """Return an unfitted copy with the same parameters."""
        return type(self)(**copy.deepcopy(self.get_params()))

    def _validate_params(self) -> None:
        constraints: dict[str, list[Any]] = {}
        for klass in reversed(type(self).__mro__):
            constraints.update(getattr(klass, "_parameter_constraints", {}))
        for name, value in self.get_params().items():
            allowed = constraints.get(name)
            if allowed is None:
                continue
            if not any(satisfies(c, value) for c in allowed):
                expected = " or ".join(
                    "None" if c is None else getattr(c, "__name__", None) or repr(c) for c in allowed
                )
                msg = f"{type(self).__name__}({name}={value!r}) is invalid: expected {expected}"
                raise InvalidInputError(msg)

    def __repr__(self) -> str:
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if defaults.get(k) != v]
        return f"{type(self).__name__}({', '.join(changed)})"

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        """Small, fast configurations the contract suite runs (override in subclasses)."""
        return [{}]

    # ------------------------------------------------------------------ learning and scoring
    def _rng(self) -> np.random.Generator:
        return np.random.default_rng(self.random_state)

    def _min_fit_rows(self) -> int:
        return 2

    def _min_fit_rows_reason(self) -> str:
        """Why ``_min_fit_rows`` rows are needed, for the error that says there are too few."""
        return "to learn a spread"

    @property
    def context_rows(self) -> int:
        """Rows of history the detector needs before a row to score it (0 for point-wise detectors)."""
        return 0

    def fit(self, X: Any, y: Any = None) -> Self:
        """Learn normal behaviour from ``X`` (rows × features); ``y`` is ignored by unsupervised detectors."""
        values = self._start_fit(X)
        if self.requires_y:
            y = self._check_labels(y, len(values))
        self._fit(values, y)
        return self._finish_fit(values)

    def _start_fit(self, X: Any) -> NDArray[np.float64]:
        """The checks and resets before ``_fit``; returns the validated rows. Fleet training
        (:mod:`vigil.detectors.fleet`) runs these per member around one batched ``_fit``."""
        self._validate_params()
        values, names = check_array(X, where="X")
        if values.shape[0] < self._min_fit_rows():
            msg = (
                f"{values.shape[0]} rows to fit on: {type(self).__name__} needs at least {self._min_fit_rows()} "
                f"({self._min_fit_rows_reason()})"
            )
            raise InvalidInputError(msg)
        for attribute in [k for k in vars(self) if k.endswith("_")]:
            delattr(self, attribute)
        self.n_features_in_ = values.shape[1]
        if names is not None:
            self.feature_names_in_ = names
        return values

    def _check_labels(self, y: Any, n_rows: int) -> NDArray[np.bool_]:
        """``y`` as one boolean per row (True: anomaly or attack), refused when missing or misshapen."""
        if y is None:
            msg = f"{type(self).__name__} is supervised: fit(X, y) needs labels y (True for anomalies or attacks)"
            raise InvalidInputError(msg)
        labels = np.asarray(y)
        if labels.shape != (n_rows,) or not (labels.dtype == bool or np.isin(labels, (0, 1)).all()):
            msg = f"y must hold one boolean (or 0/1) per row of X ({n_rows}); got shape {labels.shape}"
            raise InvalidInputError(msg)
        return labels.astype(bool)

    def _finish_fit(self, values: NDArray[np.float64]) -> Self:
        """What follows ``_fit``: the training threshold from the fitted model's scores."""
        self.threshold_ = self._training_threshold(self._checked_scores(values))
        return self

    def _training_threshold(self, scores: NDArray[np.float64]) -> float:
        return float(np.quantile(scores, 1.0 - self.contamination))

    def _prepare(self, X: Any, where: str = "X") -> NDArray[np.float64]:
        check_fitted(self)
        values, names = check_array(X, where=where)
        return check_features(
            values,
            names,
            n_features=self.n_features_in_,
            feature_names=getattr(self, "feature_names_in_", None),
            where=where,
        )

    def _checked_scores(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        return self._check_scores(self._score(values), values)

    def _check_scores(self, raw: Any, values: NDArray[np.float64]) -> NDArray[np.float64]:
        """``raw`` as float64 scores, refused unless one finite score per row of ``values``."""
        scores = np.asarray(raw, dtype=np.float64)
        if scores.shape != (values.shape[0],):
            msg = f"{type(self).__name__} returned scores of shape {scores.shape} for {values.shape[0]} rows"
            raise NumericalError(msg)
        if not np.isfinite(scores).all():
            bad = int(np.flatnonzero(~np.isfinite(scores))[0])
            msg = f"{type(self).__name__} produced a non-finite score at row {bad}: the model may have diverged"
            raise NumericalError(msg)
        return scores

    def score_samples(self, X: Any) -> NDArray[np.float64]:
        """Return one anomaly score per row of ``X``; higher means more anomalous."""
        return self._checked_scores(self._prepare(X))

    def score_with_contributions(self, X: Any, *, check_input: bool = True) -> ScoredRows:
        """:meth:`score_samples` of ``X`` and, on request, :meth:`feature_contributions` of any of its rows.

        ``check_input=False`` skips the input checks, for a caller that has made them already (a
        :class:`~vigil.pipeline.Pipeline` hands over the rows it checked and scaled): ``X`` must then be a
        float64 array of ``n_features_in_`` finite columns. The scores are checked either way.
        """
        values = self._prepare(X) if check_input else X
        raw_scores, raw = self._score_and_contributions(values)
        return ScoredRows(self._check_scores(raw_scores, values), lambda rows: as_shares(raw(rows)))

    def predict(self, X: Any) -> NDArray[np.bool_]:
        """Return True for rows whose score exceeds ``threshold_``."""
        return self.score_samples(X) > self.threshold_

    def feature_contributions(self, X: Any) -> NDArray[np.float64]:
        """Return each feature's non-negative share of each row's score, shape (n, d), rows summing to 1."""
        values = self._prepare(X)
        return as_shares(self._contributions(values))

    #: True when :meth:`score_without` can score rows that lack some features (a plant's failed sensor).
    scores_without_features: ClassVar[bool] = False

    def score_without(self, X: Any, missing: Any) -> NDArray[np.float64]:
        """Scores of rows that lack the features ``missing`` (column indices), on the scale of
        :meth:`score_samples`, so ``threshold_`` (and a pipeline's calibrated threshold) still applies.

        The values in the missing columns are ignored (NaN is fine). Detectors with
        ``scores_without_features`` implement it; the others raise ``InvalidInputError``, because a
        threshold calibrated on every feature says nothing about a score over fewer of them.
        """
        values, observed = self._prepare_without(X, missing)
        return self._check_scores(self._score_without(values, observed), values)

    def contributions_without(self, X: Any, missing: Any) -> NDArray[np.float64]:
        """:meth:`feature_contributions` of rows that lack the features ``missing``; theirs are 0."""
        values, observed = self._prepare_without(X, missing)
        raw = np.zeros_like(values)
        raw[:, observed] = self._contributions_without(values, observed)
        return as_shares(raw)

    def _prepare_without(self, X: Any, missing: Any) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
        check_fitted(self)
        if not self.scores_without_features:
            msg = f"{type(self).__name__} cannot score a row without some of its features"
            raise InvalidInputError(msg)
        filled = np.array(X, dtype=np.float64, copy=True, ndmin=2)
        index = np.asarray(missing, dtype=np.intp).reshape(-1)
        d = self.n_features_in_
        if filled.ndim != 2 or filled.shape[1] != d:
            msg = f"X has shape {filled.shape}; {type(self).__name__} was fitted on {d} features"
            raise InvalidInputError(msg)
        if index.size and (index.min() < 0 or index.max() >= d):
            msg = f"missing features {index.tolist()} are not all column indices in [0, {d})"
            raise InvalidInputError(msg)
        observed = np.ones(d, dtype=bool)
        observed[index] = False
        if not observed.any():
            msg = "every feature is missing: there is nothing to score"
            raise InvalidInputError(msg)
        filled[:, ~observed] = 0.0  # ignored; finite, so the usual checks pass over the other columns
        return self._prepare(filled), observed

    def _score_without(self, values: NDArray[np.float64], observed: NDArray[np.bool_]) -> NDArray[np.float64]:
        raise NotImplementedError

    def _contributions_without(self, values: NDArray[np.float64], observed: NDArray[np.bool_]) -> NDArray[np.float64]:
        raise NotImplementedError

    def occlusion_contributions(self, X: Any) -> NDArray[np.float64]:
        """Model-agnostic shares: how much each row's score drops when one feature reads its training centre.

        Works for every detector, whatever its own decomposition (:meth:`feature_contributions`): feature
        ``j`` is set to the value the scaler centres on (0 once scaled) in every row, the rows are scored
        again, and the positive drops are normalised per row. A windowed detector sees the feature replaced
        over its whole window. Costs one extra scoring pass per feature. Rows where no feature lowers the
        score get equal shares.
        """
        values = self._prepare(X)
        return as_shares(self._occlusion(values))

    def _contributions(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        """Per-feature contributions; detectors with an analytic decomposition override this."""
        return self._occlusion(values)

    def _score_and_contributions(self, values: NDArray[np.float64]) -> tuple[NDArray[np.float64], RawContributions]:
        """The scores of ``values`` and a function from row indices to those rows' raw contributions.

        By default the contributions are computed when asked, for the rows asked (all of ``values`` for a
        windowed detector, whose rows need their context). Detectors whose score sums per-feature terms
        return the terms they already have.
        """
        if self.context_rows:
            return self._score(values), lambda rows: self._contributions(values)[rows]
        return self._score(values), lambda rows: self._contributions(values[rows])

    def _occlusion(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        base = self._score(values)
        centre = getattr(self, "center_", np.zeros(values.shape[1]))
        out = np.empty_like(values)
        for j in range(values.shape[1]):
            occluded = values.copy()
            occluded[:, j] = centre[j]
            out[:, j] = np.maximum(base - self._score(occluded), 0.0)
        return out

    def expected_values(self, X: Any) -> NDArray[np.float64] | None:
        """What the model of normal behaviour expects each feature to read, given the row (shape (n, d)).

        Used to explain an alert in words ("12 % below what the other sensors predict"). None for
        detectors that have no notion of an expected value (Isolation Forest, for instance).
        """
        values = self._prepare(X)
        expected = self._expected(values)
        return None if expected is None else np.asarray(expected, dtype=np.float64)

    def _expected(self, values: NDArray[np.float64]) -> NDArray[np.float64] | None:
        return None

    def _fit(self, values: NDArray[np.float64], y: Any) -> None:
        raise NotImplementedError

    def _score(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        raise NotImplementedError

    # ------------------------------------------------------------------ persistence
    def _learned_state(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k.endswith("_")}

    def _restore_state(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)

    def save(self, path: str | Path) -> Path:
        """Write parameters and learned state to directory ``path`` (created if needed); return it."""
        check_fitted(self)
        directory = Path(path)
        scalars, arrays = split_state(self._learned_state())
        document = {
            "format": "vigil.detector",
            "format_version": FORMAT_VERSION,
            "detector": self.name or type(self).__name__,
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "params": _params_to_json(self.get_params()),
            "state": scalars,
        }
        write_state(directory, document, arrays)
        return directory

    @classmethod
    def load(cls, path: str | Path) -> BaseDetector:
        """Load a detector saved by :meth:`save`; the class comes from the registry, never from the file."""
        from vigil.registry import detector_class

        document, arrays = read_state(Path(path), kind="detector")
        klass = detector_class(document.get("detector", ""))
        if cls is not BaseDetector and not issubclass(klass, cls):
            msg = f"{path} holds a {klass.__name__}, not a {cls.__name__}"
            raise ModelFormatError(msg)
        if not isinstance(document.get("params", {}), dict) or not isinstance(document.get("state"), dict):
            msg = f"{Path(path) / 'config.json'}: fields 'params' and 'state' must be objects"
            raise ModelFormatError(msg)
        try:
            detector = klass(**klass.params_from_json(document.get("params", {})))
        except TypeError as exc:
            msg = f"{path} has parameters {klass.__name__} does not accept: {exc}"
            raise ModelFormatError(msg) from exc
        detector._restore_state({**document.get("state", {}), **arrays})
        return detector


def _params_to_json(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters for ``config.json``: a detector parameter (a hybrid's parts) by registered name and params."""
    return {
        key: {"detector": v.name, "params": _params_to_json(v.get_params())} if isinstance(v, BaseDetector) else v
        for key, v in params.items()
    }


class OnlineDetector(BaseDetector):
    """A detector that also learns and scores one record (a mapping of feature name to value) at a time.

    ``learn_one`` returns None to make the state change explicit; ``score_one`` never changes state.
    Subclasses implement ``_learn_one(values)`` and ``_score_one(values) -> float``, plus ``_fit``/``_score``.
    """

    @property
    def warm_up(self) -> int:
        """Records needed before ``score_one`` answers."""
        return 2

    @property
    def is_warm(self) -> bool:
        """True once the detector has seen enough samples to give meaningful scores."""
        return getattr(self, "n_seen_", 0) >= self.warm_up

    def _record_names(self, x: Mapping[str, Any]) -> list[str]:
        names = getattr(self, "feature_names_in_", None)
        if names is None:
            names = [str(k) for k in x]
        return names

    def learn_one(self, x: Mapping[str, float], *, where: str = "x") -> None:
        """Update the model with one record."""
        if not hasattr(self, "n_features_in_"):
            self._validate_params()
            names = self._record_names(x)
            values = check_record(x, names, where=where)
            self.n_features_in_ = len(names)
            self.feature_names_in_ = names
            self._init_online(len(names))
            self.threshold_ = self._online_threshold()
        else:
            values = check_record(x, self._record_names(x), where=where)
        self._learn_one(values)

    def score_one(self, x: Mapping[str, float], *, where: str = "x") -> float:
        """Score one record without learning from it."""
        check_fitted(self)
        if not self.is_warm:
            msg = f"{type(self).__name__} has seen {getattr(self, 'n_seen_', 0)} records, needs {self.warm_up}"
            raise NotWarmError(msg)
        values = check_record(x, self._record_names(x), where=where)
        score = float(self._score_one(values))
        if not np.isfinite(score):
            msg = f"{type(self).__name__} produced a non-finite score"
            raise NumericalError(msg)
        return score

    def _init_online(self, n_features: int) -> None:
        raise NotImplementedError

    def _learn_one(self, values: NDArray[np.float64]) -> None:
        raise NotImplementedError

    def _score_one(self, values: NDArray[np.float64]) -> float:
        return float(self._score(values[None, :])[0])

    def _online_threshold(self) -> float:
        """Threshold for a model built record by record (no training scores to take a quantile of)."""
        raise NotImplementedError
