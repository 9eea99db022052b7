"""The unit Vigil trains, saves, evaluates and deploys: scaler → detector → calibrated threshold."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
from numpy.typing import NDArray

import vigil
from vigil.alarms.stage import AlarmRun, AlarmStage
from vigil.base import BaseDetector, ScoredRows
from vigil.calibration.thresholds import TargetFARThreshold, Thresholder, thresholder_from_dict
from vigil.errors import InvalidInputError, ModelFormatError, SchemaError
from vigil.features.categorical import CategoryEncoder
from vigil.features.scaling import make_scaler
from vigil.features.windows import causal_mean
from vigil.persistence import FORMAT_VERSION, read_state, write_state
from vigil.validation import check_array, check_features, check_fitted

__all__ = ["ATTRIBUTION_METHODS", "FitPlan", "Pipeline", "top_features"]

ATTRIBUTION_METHODS = ("model", "occlusion")
"""How :meth:`Pipeline.contributions` attributes a score to features."""


@dataclass(frozen=True)
class FitPlan:
    """What :meth:`Pipeline.prepare_fit` decided: the scaled training rows and where the holdout starts."""

    scaled: NDArray[np.float64]
    split: int | None
    """First held-out row; None when the detector learns from every row (too few to hold any out)."""
    y: NDArray[Any] | None = None

    @property
    def detector_rows(self) -> NDArray[np.float64]:
        """The rows the detector learns from."""
        return self.scaled if self.split is None else self.scaled[: self.split]

    @property
    def detector_y(self) -> NDArray[Any] | None:
        return self.y if self.y is None or self.split is None else self.y[: self.split]


class Pipeline:
    """Scale features, score with a detector, and decide with a threshold learned from normal data.

    Parameters
    ----------
    detector : BaseDetector
        An unfitted detector; ``fit`` works on a clone, so the one passed in is never modified.
    scaler : {"standard", "robust", "none"}
        How features are scaled before the detector sees them; fitted on the training rows.
    threshold : Thresholder or None
        How the decision threshold is learned from normal scores. Default: a 1 % target false-alarm rate
        (:class:`~vigil.calibration.thresholds.TargetFARThreshold`).
    holdout : float
        Share of the training rows (the last ones, in time order) held out to calibrate the threshold on
        scores the detector did not train on; the detector learns from the other rows. 0 trains on every
        row and calibrates on in-sample scores, which are optimistic and so raise more false alarms.
    smoothing : int
        Causal score smoothing: a row's score is the mean of the detector's scores over it and the
        ``smoothing - 1`` rows before it (the first rows of a series average what there is). The threshold
        is calibrated on smoothed held-out scores, and :attr:`context_rows` grows by ``smoothing - 1`` so
        that streamed rows are smoothed exactly as in batch. Like SKAB's "N consecutive windows above the
        limit", it trades ``smoothing / 2`` rows of delay for far fewer isolated false alarms on collective
        anomalies. 1 (default) turns it off. Contributions are averaged over the same rows.
    calibrate : {"smoothed", "raw"}
        Which held-out scores set the threshold when ``smoothing > 1``. ``"smoothed"`` (default): the
        smoothed ones, the scores that are compared with it. ``"raw"``: the detector's own scores; the
        smoothed score must then stay *on average* above a limit meant for single rows. A high quantile of
        a few hundred smoothed, strongly autocorrelated scores is a poor estimate (a 1 % limit from 100
        held-out rows smoothed over 10 is the largest of about 10 independent values), and under drift it
        sits too low; the raw rows estimate it from ``smoothing`` times more independent evidence.
    alarm : AlarmStage or None
        The decision stage after the threshold (:class:`~vigil.alarms.AlarmStage`): whether the set level
        adapts to the plant and how flagged scores become alarms. It starts from the same held-out scores
        and threshold. ``None`` (default) is a bare static threshold: every flagged row is an alarm.
    categorical : sequence of str
        Text columns of a DataFrame ``X`` to one-hot encode before scaling, with the categories learned in
        ``fit`` and a ``<other>`` bucket for the rest (:class:`~vigil.features.categorical.CategoryEncoder`).
        Empty (default): every column must be numeric.

    Attributes
    ----------
    detector_ : BaseDetector
        The fitted detector.
    scaler_ : Scaler
    threshold_ : float
    alarm_ : AlarmStage
        The fitted decision stage; :meth:`decide` runs it.
    feature_names_in_ : list of str
        Column names seen in ``fit`` (``x0, x1, …`` for unnamed arrays).
    feature_names_out_ : list of str
        The names of the columns the detector sees, which contributions and explanations refer to: the
        input columns, with each categorical one replaced by its ``column=category`` columns.
    version_ : str
        A short content hash of the fitted model, used as the model version in alerts.
    selection_ : dict
        Only on a model that ``--detector auto`` chose (:mod:`vigil.tuning.auto`): how it was chosen.

    Examples
    --------
    >>> import numpy as np
    >>> from vigil.detectors.pca import PCADetector
    >>> rng = np.random.default_rng(0)
    >>> t = rng.normal(size=(300, 1))
    >>> X = np.hstack([t, 2 * t, -t]) + 0.05 * rng.normal(size=(300, 3))
    >>> pipe = Pipeline(PCADetector(n_components=1)).fit(X)
    >>> pipe.predict([[0.5, 1.0, -0.5], [0.5, -1.0, -0.5]])
    array([False,  True])
    >>> pipe.explain([[0.5, -1.0, -0.5]], top_k=1)
    [[('x1', 0.6...)]]
    """

    # Declared, not set: only an automatically selected model has one (read with getattr(..., None)).
    selection_: dict[str, Any]

    def __init__(
        self,
        detector: BaseDetector,
        *,
        scaler: str = "standard",
        threshold: Thresholder | None = None,
        holdout: float = 0.25,
        smoothing: int = 1,
        calibrate: str = "smoothed",
        alarm: AlarmStage | None = None,
        categorical: Sequence[str] = (),
    ) -> None:
        self.detector = detector
        self.scaler = scaler
        self.threshold = threshold
        self.holdout = holdout
        self.smoothing = smoothing
        self.calibrate = calibrate
        self.alarm = alarm
        self.categorical = tuple(categorical)

    def __repr__(self) -> str:
        return (
            f"Pipeline({self.detector!r}, scaler={self.scaler!r}, threshold={self.threshold!r}, holdout={self.holdout}"
            + (f", smoothing={self.smoothing}" if self.smoothing != 1 else "")
            + (f", calibrate={self.calibrate!r}" if self.calibrate != "smoothed" else "")
            + (f", categorical={list(self.categorical)!r}" if self.categorical else "")
            + (f", alarm={self.alarm!r})" if self.alarm is not None else ")")
        )

    @property
    def context_rows(self) -> int:
        """Rows of history needed before a row to score it: the detector's, plus the smoothing span."""
        return self.detector.context_rows + max(int(self.smoothing), 1) - 1

    def _smooth(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        """Causal rolling mean over ``smoothing`` rows along axis 0, summed in the same order wherever the
        series starts, so that streamed and batch scores agree exactly."""
        return causal_mean(values, self.smoothing)

    def clone(self) -> Pipeline:
        """An unfitted pipeline with the same settings (the detector, threshold and alarm stage copied)."""
        return Pipeline(
            self.detector.clone(),
            scaler=self.scaler,
            threshold=None if self.threshold is None else type(self.threshold)(**self.threshold.get_params()),
            holdout=self.holdout,
            smoothing=self.smoothing,
            calibrate=self.calibrate,
            alarm=None if self.alarm is None else self.alarm.clone(),
            categorical=self.categorical,
        )

    def fit(self, X: Any, y: Any = None) -> Self:
        """Fit scaler, detector and threshold on training rows ``X`` (time-ordered, mostly normal)."""
        plan = self.prepare_fit(X, y)
        return self.complete_fit(plan, self.detector.clone().fit(plan.detector_rows, plan.detector_y))

    def prepare_fit(self, X: Any, y: Any = None) -> FitPlan:
        """The first half of :meth:`fit`: check the settings and ``X``, fit the scaler, and say which scaled
        rows the detector learns from. :meth:`complete_fit` takes the detector fitted on them; fleet
        training (:func:`vigil.fleet.fit_pipelines`) fits many pipelines' detectors at once in between."""
        if not (isinstance(self.holdout, (int, float)) and 0.0 <= self.holdout < 1.0):
            msg = f"Pipeline(holdout={self.holdout!r}) must be a share in [0, 1)"
            raise InvalidInputError(msg)
        if isinstance(self.smoothing, bool) or not isinstance(self.smoothing, int) or self.smoothing < 1:
            msg = f"Pipeline(smoothing={self.smoothing!r}) must be a whole number of rows ≥ 1"
            raise InvalidInputError(msg)
        if self.calibrate not in ("smoothed", "raw"):
            msg = f"Pipeline(calibrate={self.calibrate!r}) must be 'smoothed' or 'raw'"
            raise InvalidInputError(msg)
        if self.alarm is not None and not isinstance(self.alarm, AlarmStage):
            msg = f"Pipeline(alarm={self.alarm!r}) must be an AlarmStage or None"
            raise InvalidInputError(msg)
        self.encoder_ = None
        if self.categorical:
            self.encoder_ = CategoryEncoder(self.categorical).fit(X)
            raw_names = [str(c) for c in X.columns]
            X = self.encoder_.transform(X)
        values, names = check_array(X, where="X", min_rows=4)
        self.feature_names_out_ = names if names is not None else [f"x{j}" for j in range(values.shape[1])]
        self.feature_names_in_ = raw_names if self.encoder_ is not None else self.feature_names_out_
        self.n_features_in_ = len(self.feature_names_in_)
        self._named_input = names is not None
        self.scaler_ = make_scaler(self.scaler).fit(values)
        scaled = self.scaler_.transform(values)
        n_holdout = round(self.holdout * len(scaled))
        split = None
        if n_holdout >= 2 and len(scaled) - n_holdout >= self.detector._min_fit_rows():
            # The detector never sees the held-out rows, so their scores are honest out-of-sample scores, and
            # the threshold is calibrated for exactly the model that will use it (no refit afterwards: a
            # refitted model would score on another scale).
            split = len(scaled) - n_holdout
        return FitPlan(scaled, split, None if y is None else np.asarray(y))

    def complete_fit(self, plan: FitPlan, detector: BaseDetector) -> Self:
        """The second half of :meth:`fit`: calibrate the threshold and the alarm stage with ``detector``,
        fitted on ``plan.detector_rows``."""
        calibrated = self._smooth if self.calibrate == "smoothed" else (lambda scores: scores)
        scaled, split = plan.scaled, plan.split
        self.detector_ = detector
        thresholder = self.threshold if self.threshold is not None else TargetFARThreshold(far=0.01)
        if split is not None:
            # Windowed detectors get the rows before the holdout as history, so every held-out row is scored
            # from a full window.
            n_holdout = len(scaled) - split
            calibration_scores = calibrated(self.detector_.score_samples(scaled[max(split - self.context_rows, 0) :]))
            calibration_scores = calibration_scores[-n_holdout:]
        else:
            calibration_scores = calibrated(self.detector_.score_samples(scaled))
        self.thresholder_ = type(thresholder)(**thresholder.get_params()).fit(calibration_scores)
        self.threshold_ = self.thresholder_.threshold_
        # Kept (not saved) so that evaluation can derive other operating points from the same evidence.
        self.calibration_scores_ = np.asarray(calibration_scores, dtype=np.float64)
        stage = self.alarm.clone() if self.alarm is not None else AlarmStage()
        self.alarm_ = stage.fit(calibration_scores, self.threshold_)
        train_scores = self._smooth(self.detector_.score_samples(scaled))
        self.train_score_quantiles_ = {str(q): float(np.quantile(train_scores, q)) for q in (0.5, 0.9, 0.99, 1.0)}
        self.version_ = self._fingerprint()
        return self

    def _fingerprint(self) -> str:
        digest = hashlib.sha256()
        digest.update(repr(self.detector_.get_params()).encode())
        digest.update(self.detector_.name.encode())
        if self.smoothing != 1:
            digest.update(f"smoothing={self.smoothing}".encode())
        if self.calibrate != "smoothed":
            digest.update(f"calibrate={self.calibrate}".encode())
        if not self.alarm_.is_plain:
            digest.update(repr(sorted(self.alarm_.to_dict().items())).encode())
        if self.encoder_ is not None:
            digest.update(repr(self.encoder_.to_dict()).encode())
        for value in (self.scaler_.center_, self.scaler_.scale_, np.array([self.threshold_])):
            digest.update(np.ascontiguousarray(value).tobytes())
        for key, value in sorted(self.detector_._learned_state().items()):
            digest.update(key.encode())
            digest.update(
                np.ascontiguousarray(value).tobytes() if isinstance(value, np.ndarray) else repr(value).encode()
            )
        return f"{self.detector_.name}-{digest.hexdigest()[:10]}"

    def _transform(self, X: Any, where: str = "X") -> NDArray[np.float64]:
        check_fitted(self)
        if self.encoder_ is not None:
            X = self.encoder_.transform(self._check_columns(X, where), where=where)
        values, names = check_array(X, where=where)
        values = check_features(
            values,
            names,
            n_features=len(self.feature_names_out_),
            feature_names=self.feature_names_out_ if self._named_input else None,
            where=where,
        )
        return self.scaler_.transform(values)

    def _check_columns(self, X: Any, where: str) -> Any:
        """A frame for a pipeline with text columns: exactly the columns it was fitted on, in any order."""
        if isinstance(X, pd.DataFrame):
            columns = [str(c) for c in X.columns]
            missing = [c for c in self.feature_names_in_ if c not in columns]
            extra = [c for c in columns if c not in self.feature_names_in_]
            if missing or extra:
                msg = f"{where} has other columns than the model was fitted with: missing {missing}, unexpected {extra}"
                raise SchemaError(msg)
        return X

    def score_samples(self, X: Any) -> NDArray[np.float64]:
        """One anomaly score per row; higher = more anomalous."""
        return self.score_with_contributions(X).scores

    def score_with_contributions(self, X: Any, *, check_input: bool = True) -> ScoredRows:
        """:meth:`score_samples` of ``X`` and, on request, :meth:`contributions` of any of its rows, from one
        pass over the rows: they are checked and scaled once, and the detector explains them from the terms
        it scored them with (see :meth:`~vigil.base.BaseDetector.score_with_contributions`).

        ``check_input=False`` is for a caller that has checked the rows already (the service's runtime
        checks each record once, on arrival): ``X`` must then be a float64 array of the model's sensors in
        its order, finite. A pipeline that encodes text columns checks them anyway.
        """
        if check_input or self.encoder_ is not None:
            scaled = self._transform(X)  # first: it says "not fitted" before a missing detector_ could
        else:
            check_fitted(self)
            scaled = self.scaler_.transform(X)
        scored = self.detector_.score_with_contributions(scaled, check_input=False)
        if self.smoothing <= 1:
            return scored
        # Smoothed shares average the raw shares of the rows before, so they are smoothed over the batch.
        return ScoredRows(self._smooth(scored.scores), lambda rows: self._smooth(scored.contributions())[rows])

    def transform(self, X: Any) -> NDArray[np.float64]:
        """``X`` checked against the fit (features, names) and scaled: what the detector scores."""
        return self._transform(X)

    def smooth(self, scores: Any) -> NDArray[np.float64]:
        """The detector's scores of consecutive rows, smoothed as :meth:`score_samples` smooths them."""
        return self._smooth(np.asarray(scores, dtype=np.float64))

    def predict(self, X: Any) -> NDArray[np.bool_]:
        """True where the score exceeds the calibrated (static) threshold; :meth:`decide` gives the alarms."""
        return self.score_samples(X) > self.threshold_

    def decide(self, scores: Any, *, state: Any = None, timestamps: Any = None) -> AlarmRun:
        """Run the alarm stage over ``scores`` in time order (see :meth:`AlarmStage.run`).

        ``state`` continues a device's :class:`~vigil.alarms.AlarmState` (a fresh one when ``None``), so a
        stream decided piece by piece gives the same alarms as the whole series at once.
        """
        check_fitted(self)
        return self.alarm_.run(scores, state, timestamps=timestamps)

    @property
    def scores_without_features(self) -> bool:
        """Whether :meth:`score_without` can score rows that lack some sensors: the detector can, and each row
        is scored on its own (no window, no smoothing, no text columns)."""
        check_fitted(self)
        return self.detector_.scores_without_features and self.context_rows == 0 and self.encoder_ is None

    def score_without(self, X: Any, missing: Sequence[str | int]) -> NDArray[np.float64]:
        """Scores of rows that lack the sensors ``missing`` (names or column indices), against the same threshold.

        The values in the missing columns are ignored (NaN is fine). See
        :meth:`~vigil.base.BaseDetector.score_without`; raises ``InvalidInputError`` when
        :attr:`scores_without_features` is false.
        """
        scaled, index = self._scaled_without(X, missing)
        return self.detector_.score_without(scaled, index)

    def contributions_without(self, X: Any, missing: Sequence[str | int]) -> NDArray[np.float64]:
        """:meth:`contributions` of rows that lack the sensors ``missing``; theirs are 0."""
        scaled, index = self._scaled_without(X, missing)
        return self.detector_.contributions_without(scaled, index)

    def _scaled_without(self, X: Any, missing: Sequence[str | int]) -> tuple[NDArray[np.float64], list[int]]:
        if not self.scores_without_features:
            why = (
                f"its detector {type(self.detector_).__name__} cannot"
                if not self.detector_.scores_without_features
                else "it scores rows in context (a window or smoothing) or encodes text columns"
            )
            msg = f"this pipeline cannot score a row without some of its sensors: {why}"
            raise InvalidInputError(msg)
        names = self.feature_names_out_
        index = []
        for item in missing:
            if isinstance(item, str) and item not in names:
                msg = f"missing sensor {item!r} is not one of the model's sensors {names}"
                raise InvalidInputError(msg)
            index.append(names.index(item) if isinstance(item, str) else int(item))
        filled = np.array(X, dtype=np.float64, copy=True, ndmin=2)
        if index:
            filled[:, index] = self.scaler_.center_[index]  # any finite value: the detector ignores them
        return self._transform(filled), index

    def contributions(self, X: Any, *, method: str = "model") -> NDArray[np.float64]:
        """Each feature's share of each row's score, shape (n, d), rows summing to 1.

        ``method="model"`` uses the detector's own decomposition (T²/Q for PCA, reconstruction or prediction
        error per sensor...); ``"occlusion"`` the model-agnostic one that works for any detector: the drop
        of the score when a feature reads its training centre (see
        :meth:`~vigil.base.BaseDetector.occlusion_contributions`).
        """
        if method not in ATTRIBUTION_METHODS:
            msg = f"unknown attribution method {method!r}; choose one of {', '.join(ATTRIBUTION_METHODS)}"
            raise InvalidInputError(msg)
        scaled = self._transform(X)
        if method == "occlusion":
            return self._smooth(self.detector_.occlusion_contributions(scaled))
        return self._smooth(self.detector_.feature_contributions(scaled))

    def explain(self, X: Any, *, top_k: int = 3) -> list[list[tuple[str, float]]]:
        """For each row, the ``top_k`` features that drove its score, with their shares, largest first."""
        shares = self.contributions(X)
        return top_features(shares, self.feature_names_out_, top_k=top_k)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write the fitted pipeline to directory ``path``: ``config.json``, ``arrays.npz``, ``detector/``."""
        check_fitted(self)
        directory = Path(path)
        document = {
            "format": "vigil.pipeline",
            "format_version": FORMAT_VERSION,
            "vigil_version": vigil.__version__,
            "version": self.version_,
            "detector": self.detector_.name,
            "scaler": self.scaler_.kind,
            "holdout": self.holdout,
            "smoothing": self.smoothing,
            "calibrate": self.calibrate,
            "threshold": self.thresholder_.to_dict(),
            "alarm": self.alarm_.to_dict(),
            "feature_names": self.feature_names_in_,
            "named_input": self._named_input,
            **({"categorical": self.encoder_.to_dict()} if self.encoder_ is not None else {}),
            "train_score_quantiles": self.train_score_quantiles_,
        }
        if getattr(self, "selection_", None) is not None:
            # How --detector auto chose this configuration (vigil.tuning.auto), kept with the model.
            document["selection"] = self.selection_
        write_state(directory, document, {"scaler_center": self.scaler_.center_, "scaler_scale": self.scaler_.scale_})
        self.detector_.save(directory / "detector")
        return directory

    @classmethod
    def load(cls, path: str | Path) -> Pipeline:
        """Load a pipeline saved by :meth:`save`; a corrupt or foreign directory raises ModelFormatError."""
        directory = Path(path)
        document, arrays = read_state(directory, kind="pipeline")
        try:
            detector = BaseDetector.load(directory / "detector")
            pipe = cls(
                detector.clone(),
                scaler=document["scaler"],
                holdout=float(document["holdout"]),
                smoothing=int(document.get("smoothing", 1)),  # absent from pipelines saved before it existed
                calibrate=str(document.get("calibrate", "smoothed")),
                categorical=document["categorical"]["columns"] if "categorical" in document else (),
            )
            pipe.detector_ = detector
            pipe.scaler_ = make_scaler(document["scaler"]).restore(arrays["scaler_center"], arrays["scaler_scale"])
            pipe.thresholder_ = thresholder_from_dict(document["threshold"])
            pipe.threshold = type(pipe.thresholder_)(**pipe.thresholder_.get_params())
            pipe.threshold_ = float(document["threshold"]["threshold"])
            if "alarm" in document:
                pipe.alarm_ = AlarmStage.from_dict(document["alarm"])
                pipe.alarm = pipe.alarm_.clone()
            else:  # saved before the alarm stage existed: a bare static threshold, as it then was
                pipe.alarm_ = AlarmStage().fit([pipe.threshold_, pipe.threshold_], pipe.threshold_)
            pipe.feature_names_in_ = [str(n) for n in document["feature_names"]]
            pipe._named_input = bool(document["named_input"])
            pipe.n_features_in_ = len(pipe.feature_names_in_)
            pipe.encoder_ = CategoryEncoder.from_dict(document["categorical"]) if "categorical" in document else None
            pipe.feature_names_out_ = (
                pipe.encoder_.feature_names_out_ if pipe.encoder_ is not None else pipe.feature_names_in_
            )
            pipe.train_score_quantiles_ = dict(document.get("train_score_quantiles", {}))
            if "selection" in document:
                pipe.selection_ = dict(document["selection"])
            pipe.version_ = str(document["version"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            msg = f"{directory} is not a valid saved pipeline: {exc!r}"
            raise ModelFormatError(msg) from exc
        if not math.isfinite(pipe.threshold_):
            msg = f"{directory / 'config.json'}: field threshold.threshold is {pipe.threshold_}, not a finite number"
            raise ModelFormatError(msg)
        n_detector = getattr(detector, "n_features_in_", None)
        n_out = len(pipe.feature_names_out_)
        if pipe.scaler_.center_.shape != (n_out,) or n_detector != n_out:
            msg = f"{directory} is inconsistent: scaler, detector and feature names disagree on the feature count"
            raise ModelFormatError(msg)
        # The state arrays must also fit together (a components_ of the wrong shape loads, then fails every
        # score): score the training centre once, so that a bad directory is refused here, not on live data.
        try:
            centre = check_array(np.tile(pipe.scaler_.center_, (pipe.context_rows + 1, 1)), where="scaler_center")[0]
            pipe._smooth(pipe.detector_.score_samples(pipe.scaler_.transform(centre)))
        except Exception as exc:
            msg = f"{directory}: the loaded model cannot score ({type(exc).__name__}: {exc}); its state is inconsistent"
            raise ModelFormatError(msg) from exc
        return pipe


def top_features(shares: NDArray[np.float64], names: list[str], *, top_k: int = 3) -> list[list[tuple[str, float]]]:
    """Rank features by share per row; return the ``top_k`` (name, share) pairs of each row."""
    k = max(1, min(top_k, shares.shape[1]))
    order = np.argsort(-shares, axis=1, kind="stable")[:, :k]
    return [[(names[j], float(shares[i, j])) for j in row] for i, row in enumerate(order)]
