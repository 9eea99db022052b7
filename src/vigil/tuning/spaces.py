"""Search spaces: the hyperparameters that matter for each detector, and their ranges.

Each space is a function of an Optuna trial returning constructor parameters. Ranges are wide enough to
contain the defaults, so a search can always fall back to them. The spaces of the windowed deep detectors also
search the pipeline's causal score smoothing (``smoothing``, ``calibrate``): on sensor data a fault lasts many
rows, and averaging the score over a few of them is often worth more than any network setting.
:func:`split_params` separates those pipeline keys from the detector's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["PIPELINE_PARAMS", "SEARCH_SPACES", "search_space", "split_params"]

Space = Callable[[Any], dict[str, Any]]

#: Keys a space may return that belong to the :class:`~vigil.pipeline.Pipeline`, not to its detector.
PIPELINE_PARAMS = ("smoothing", "calibrate")


def split_params(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split searched parameters into (pipeline parameters, detector parameters)."""
    pipeline = {k: v for k, v in params.items() if k in PIPELINE_PARAMS}
    detector = {k: v for k, v in params.items() if k not in PIPELINE_PARAMS}
    return pipeline, detector


def _smoothing(trial: Any) -> dict[str, Any]:
    smoothing = trial.suggest_categorical("smoothing", [1, 5, 10])
    if smoothing == 1:
        return {"smoothing": 1}
    # Calibrating on raw scores keeps the training false-alarm rate; on smoothed ones it follows the smoothing.
    return {"smoothing": smoothing, "calibrate": trial.suggest_categorical("calibrate", ["smoothed", "raw"])}


def _pca(trial: Any) -> dict[str, Any]:
    return {"n_components": trial.suggest_float("n_components", 0.5, 0.999)}


def _mahalanobis(trial: Any) -> dict[str, Any]:
    return {"support_fraction": trial.suggest_float("support_fraction", 0.5, 1.0)}


def _online_zscore(trial: Any) -> dict[str, Any]:
    forget = trial.suggest_categorical("forget", [False, True])
    half_life = trial.suggest_float("half_life", 50.0, 5000.0, log=True) if forget else None
    return {"half_life": half_life}


def _iforest(trial: Any) -> dict[str, Any]:
    return {
        "n_estimators": trial.suggest_int("n_estimators", 50, 300, step=50),
        "max_samples": trial.suggest_int("max_samples", 64, 512, log=True),
        "max_features": trial.suggest_float("max_features", 0.5, 1.0),
    }


def _autoencoder(trial: Any) -> dict[str, Any]:
    return {
        "latent": trial.suggest_int("latent", 1, 16, log=True),
        "window": trial.suggest_int("window", 1, 32, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 2e-2, log=True),
        "dropout": trial.suggest_float("dropout", 0.0, 0.3),
        **_smoothing(trial),
    }


def _conv_ae(trial: Any) -> dict[str, Any]:
    wide = trial.suggest_categorical("wide_filters", [16, 32, 64])
    return {
        "window": trial.suggest_int("window", 16, 64, step=8),
        "filters": (wide, wide // 2),
        "kernel_size": trial.suggest_categorical("kernel_size", [3, 5, 7]),
        "dropout": trial.suggest_float("dropout", 0.0, 0.4),
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
        **_smoothing(trial),
    }


def _lstm_ae(trial: Any) -> dict[str, Any]:
    return {
        "window": trial.suggest_int("window", 16, 64, step=8),
        "hidden_size": trial.suggest_categorical("hidden_size", [16, 32, 64]),
        "latent": trial.suggest_int("latent", 2, 16, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 3e-4, 1e-2, log=True),
        **_smoothing(trial),
    }


def _lstm_forecaster(trial: Any) -> dict[str, Any]:
    return {
        "window": trial.suggest_int("window", 8, 64, step=8),
        "hidden_size": trial.suggest_categorical("hidden_size", [16, 32, 64]),
        "dropout": trial.suggest_float("dropout", 0.0, 0.3),
        "learning_rate": trial.suggest_float("learning_rate", 3e-4, 1e-2, log=True),
        **_smoothing(trial),
    }


def _tcn_forecaster(trial: Any) -> dict[str, Any]:
    return {
        "window": trial.suggest_int("window", 8, 64, step=8),
        "filters": trial.suggest_categorical("filters", [16, 32, 64]),
        "kernel_size": trial.suggest_categorical("kernel_size", [2, 3, 5]),
        "dropout": trial.suggest_float("dropout", 0.0, 0.3),
        "learning_rate": trial.suggest_float("learning_rate", 3e-4, 1e-2, log=True),
        **_smoothing(trial),
    }


def _tcn_sequence(trial: Any) -> dict[str, Any]:
    # A trial costs a tenth of the windowed TCN's, so the space can afford the persistence switch too. The
    # receptive field is up to twice the window and every row of it must be real history: windows stay
    # short enough for a tuning fold's ~75 training rows.
    return {
        "window": trial.suggest_int("window", 8, 32, step=8),
        "filters": trial.suggest_categorical("filters", [8, 16, 32]),
        "kernel_size": trial.suggest_categorical("kernel_size", [2, 3, 5]),
        "dropout": trial.suggest_float("dropout", 0.0, 0.3),
        "learning_rate": trial.suggest_float("learning_rate", 3e-3, 3e-2, log=True),
        "persistence": trial.suggest_categorical("persistence", [False, True]),
        **_smoothing(trial),
    }


def _usad(trial: Any) -> dict[str, Any]:
    return {
        "window": trial.suggest_int("window", 4, 32, log=True),
        "latent": trial.suggest_int("latent", 4, 32, log=True),
        "alpha": trial.suggest_float("alpha", 0.1, 0.9),
        "learning_rate": trial.suggest_float("learning_rate", 3e-4, 1e-2, log=True),
        **_smoothing(trial),
    }


SEARCH_SPACES: dict[str, Space] = {
    "pca": _pca,
    "mahalanobis": _mahalanobis,
    "online-zscore": _online_zscore,
    "iforest": _iforest,
    "autoencoder": _autoencoder,
    "conv-ae": _conv_ae,
    "lstm-ae": _lstm_ae,
    "lstm-forecaster": _lstm_forecaster,
    "tcn-forecaster": _tcn_forecaster,
    "tcn-sequence": _tcn_sequence,
    "usad": _usad,
}


def search_space(detector: str) -> Space:
    """Return the search space of a registered detector."""
    from vigil.errors import InvalidInputError

    if detector not in SEARCH_SPACES:
        msg = f"no search space for detector {detector!r}; spaces exist for {sorted(SEARCH_SPACES)}"
        raise InvalidInputError(msg)
    return SEARCH_SPACES[detector]
