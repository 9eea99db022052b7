"""The model registry: every version of every deployed model in a directory, and which one is active.

Layout (one folder per model — an asset type such as ``pump``, or ``default``)::

    REGISTRY/
      pump/
        versions/<version>/   a saved pipeline (``Pipeline.save``), its ``input.json`` and ``meta.json``
        active                the active version's name, replaced atomically
        history.jsonl         one line per activation: time, version, previous, reason
        calibration/<version>.json   per-device thresholds learned from operators' verdicts
        recent/               recent accepted telemetry, kept for retraining

Versions are never deleted or changed, so any of them can be activated again (rollback). The ``active``
file is written to a temporary name and renamed over the old one, so a reader sees the old or the new
version, never half of one; a running service polls it and hot-swaps when another process (``vigil
retrain``) activates a version.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vigil.errors import InvalidInputError, ModelFormatError
from vigil.pipeline import Pipeline
from vigil.times import format_time

__all__ = ["ModelRegistry", "VersionInfo", "atomic_write_text", "check_name"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_name(value: Any, what: str) -> str:
    """Return ``value`` if it is a safe model or version name (letters, digits, ``_.-``; no path parts).

    Examples
    --------
    >>> check_name("pump", "model")
    'pump'
    >>> check_name("../etc", "model")
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidInputError: model name '../etc' must be 1-64 letters, digits, '_', '.' or '-', ...
    """
    if not isinstance(value, str) or not _NAME.match(value) or value in {".", ".."}:
        msg = f"{what} name {value!r} must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"
        raise InvalidInputError(msg)
    return value


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, fsync and rename: all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class VersionInfo:
    """One stored version of a model: its name, when it was added, whether it is active, and its notes."""

    model: str
    version: str
    created: str
    active: bool
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "created": self.created,
            "active": self.active,
            "meta": self.meta,
        }


class ModelRegistry:
    """Versions of named models in a directory, with an atomically replaced active pointer.

    Parameters
    ----------
    root : str or Path
        The registry folder; created if missing.

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> from vigil.detectors.pca import PCADetector
    >>> pipe = Pipeline(PCADetector(n_components=1)).fit(np.random.default_rng(0).normal(size=(50, 2)))
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     registry = ModelRegistry(tmp)
    ...     version = registry.add("pump", pipe, activate=True)
    ...     registry.active("pump") == pipe.version_, registry.load("pump").version_ == version
    (True, True)
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"ModelRegistry({str(self.root)!r})"

    # -- paths ---------------------------------------------------------------------------------------

    def model_dir(self, name: str) -> Path:
        return self.root / check_name(name, "model")

    def version_dir(self, name: str, version: str) -> Path:
        return self.model_dir(name) / "versions" / check_name(version, "version")

    # -- reading -------------------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Models that have at least one version, sorted."""
        return sorted(p.name for p in self.root.iterdir() if (p / "versions").is_dir() and _NAME.match(p.name))

    def active(self, name: str) -> str | None:
        """The active version of model ``name``, or None if none was activated."""
        pointer = self.model_dir(name) / "active"
        try:
            text = pointer.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return check_name(text, "version") if text else None

    def versions(self, name: str) -> list[VersionInfo]:
        """Every version of model ``name``, oldest first."""
        base = self.model_dir(name) / "versions"
        if not base.is_dir():
            msg = f"no model named {name!r} in the registry {self.root}"
            raise InvalidInputError(msg)
        active = self.active(name)
        infos = []
        for path in base.iterdir():
            if not path.is_dir() or not _NAME.match(path.name):
                continue
            meta = self._read_meta(path)
            infos.append(VersionInfo(name, path.name, str(meta.get("created", "")), path.name == active, meta))
        return sorted(infos, key=lambda info: (info.created, info.version))

    def history(self, name: str) -> list[dict[str, Any]]:
        """Activations of model ``name``, oldest first."""
        path = self.model_dir(name) / "history.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def load(self, name: str, version: str | None = None) -> Pipeline:
        """Load a version of model ``name`` (the active one by default).

        Raises
        ------
        InvalidInputError
            No such model or version, or no active version.
        ModelFormatError
            The stored version is corrupt.
        """
        chosen = version if version is not None else self.active(name)
        if chosen is None:
            msg = f"model {name!r} has no active version in the registry {self.root}"
            raise InvalidInputError(msg)
        path = self.version_dir(name, chosen)
        if not path.is_dir():
            msg = f"model {name!r} has no version {chosen!r} in the registry {self.root}"
            raise InvalidInputError(msg)
        return Pipeline.load(path)

    # -- writing -------------------------------------------------------------------------------------

    def add(
        self,
        name: str,
        model: Pipeline | str | Path,
        *,
        activate: bool = False,
        meta: dict[str, Any] | None = None,
        reason: str = "added",
    ) -> str:
        """Store a fitted pipeline (or copy a saved model directory) as a new version; return its version.

        Adding a version that is already stored changes nothing (versions are content hashes). With
        ``activate=True`` it also becomes the active version.
        """
        check_name(name, "model")
        if isinstance(model, Pipeline):
            pipeline, source = model, None
        else:
            source = Path(model)
            if not source.is_dir():
                msg = f"model directory {source} does not exist"
                raise InvalidInputError(msg)
            pipeline = Pipeline.load(source)
        encoder = getattr(pipeline, "encoder_", None)
        if encoder is not None:
            msg = (
                f"model {name!r} one-hot encodes the text columns {', '.join(encoder.columns)}: live "
                "readings are numbers only, so such a model scores files (vigil score), not the service"
            )
            raise InvalidInputError(msg)
        version = check_name(pipeline.version_, "version")
        target = self.version_dir(name, version)
        if not target.is_dir():
            staging = Path(tempfile.mkdtemp(dir=self.model_dir(name).parent, prefix=f".{name}-{version}-"))
            try:
                if source is not None:
                    shutil.copytree(source, staging, dirs_exist_ok=True)
                else:
                    pipeline.save(staging)
                    layout = {"features": pipeline.feature_names_in_}
                    (staging / "input.json").write_text(json.dumps(layout, indent=2) + "\n", encoding="utf-8")
                document = {"created": format_time(datetime.now(UTC)), **(meta or {})}
                (staging / "meta.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging, target)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        if activate:
            self.activate(name, version, reason=reason)
        return version

    def deploy(self, models: Iterable[tuple[str, str | Path | None]]) -> list[str]:
        """Add each ``(name, directory)`` of a service's ``--model`` options and return the names in order.

        A model with no active version yet gets the added one ("first deployment"); one that has an active
        version keeps it (a restart does not undo a rollback). A name without a directory is a model the
        registry must already hold.
        """
        names = []
        for name, directory in models:
            if directory is not None:
                version = self.add(name, directory)
                if self.active(name) is None:
                    self.activate(name, version, reason="first deployment")
            names.append(name)
        return names

    def activate(self, name: str, version: str, *, reason: str = "activated") -> str | None:
        """Make ``version`` the active version of ``name``; return the version it replaced."""
        if not self.version_dir(name, version).is_dir():
            msg = f"model {name!r} has no version {version!r} in the registry {self.root}"
            raise InvalidInputError(msg)
        previous = self.active(name)
        atomic_write_text(self.model_dir(name) / "active", version + "\n")
        entry = {"time": format_time(datetime.now(UTC)), "version": version, "previous": previous, "reason": reason}
        with (self.model_dir(name) / "history.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return previous

    def rollback(self, name: str) -> str:
        """Re-activate the version that was active before the current one; return it.

        Raises
        ------
        InvalidInputError
            There is no earlier version to go back to.
        """
        current = self.active(name)
        for entry in reversed(self.history(name)):
            if entry.get("version") == current and entry.get("previous") and entry["previous"] != current:
                previous = str(entry["previous"])
                self.activate(name, previous, reason=f"rollback from {current}")
                return previous
        msg = f"model {name!r} has no earlier active version to roll back to"
        raise InvalidInputError(msg)

    # -- helpers -------------------------------------------------------------------------------------

    @staticmethod
    def _read_meta(path: Path) -> dict[str, Any]:
        meta_path = path / "meta.json"
        if not meta_path.is_file():
            return {}
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            msg = f"{meta_path} is not valid JSON: {exc}"
            raise ModelFormatError(msg) from exc
        return meta if isinstance(meta, dict) else {}
