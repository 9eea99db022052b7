"""Saving learned state without pickle: a JSON document plus one ``.npz`` of arrays.

A saved object is a directory holding ``config.json`` (format name, format version, class, parameters and
small learned values) and ``arrays.npz`` (learned arrays, loaded with ``allow_pickle=False``). Nothing in it
can execute code when loaded, and a corrupted or foreign directory raises :class:`ModelFormatError`.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from vigil.errors import ModelFormatError

__all__ = ["FORMAT_VERSION", "read_json", "read_state", "split_state", "write_json", "write_state"]

FORMAT_VERSION = 1


def _to_json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return [_to_json_value(v) for v in value]
    if isinstance(value, list):
        return [_to_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _to_json_value(v) for k, v in value.items()}
    return value


def split_state(state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Split a mapping of learned values into JSON-able scalars and numpy arrays."""
    scalars: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    for key, value in state.items():
        if isinstance(value, np.ndarray):
            if value.dtype == object:
                msg = f"cannot save {key!r}: object arrays would need pickle"
                raise TypeError(msg)
            arrays[key] = value
        else:
            scalars[key] = _to_json_value(value)
    return scalars, arrays


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(_to_json_value(document), indent=2, sort_keys=True, allow_nan=False) + "\n")


def read_json(path: Path, *, kind: str) -> dict[str, Any]:
    """Read a config document and check that it is a Vigil ``kind`` of a known format version."""
    if not path.is_file():
        msg = f"{path.parent} is not a saved Vigil {kind}: {path.name} is missing"
        raise ModelFormatError(msg)
    try:
        document = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        msg = f"{path} is corrupt: {exc}"
        raise ModelFormatError(msg) from exc
    if not isinstance(document, dict) or document.get("format") != f"vigil.{kind}":
        found = document.get("format") if isinstance(document, dict) else None
        msg = f"{path} is not a saved Vigil {kind} (format={found!r})"
        raise ModelFormatError(msg)
    version = document.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        msg = (
            f"{path} has format version {version!r}; this Vigil reads versions up to {FORMAT_VERSION}: "
            "upgrade Vigil to load it"
        )
        raise ModelFormatError(msg)
    return document


def write_state(directory: Path, document: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    np.savez(directory / "arrays.npz", **arrays)
    write_json(directory / "config.json", document)


def read_state(directory: Path, *, kind: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    directory = Path(directory)
    if not directory.is_dir():
        msg = f"{directory} is not a directory holding a saved Vigil {kind}"
        raise ModelFormatError(msg)
    document = read_json(directory / "config.json", kind=kind)
    arrays_path = directory / "arrays.npz"
    if not arrays_path.is_file():
        msg = f"{directory} is incomplete: arrays.npz is missing"
        raise ModelFormatError(msg)
    try:
        with np.load(arrays_path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        msg = f"{arrays_path} is corrupt: {exc}"
        raise ModelFormatError(msg) from exc
    return document, arrays
