"""Saving learned state without pickle: a JSON document plus one ``.npz`` of arrays, under a manifest.

A saved object is a directory holding ``config.json`` (format name, format version, class, parameters and
small learned values), ``arrays.npz`` (learned arrays, loaded with ``allow_pickle=False``) and
``manifest.json``: the manifest's format version, each file's size and SHA-256, and each array's shape, dtype
and whether it was finite. Nothing in it can execute code when loaded, and a corrupted, tampered, truncated or
foreign directory raises one :class:`ModelFormatError` naming the file and the field.

Directories saved before manifests existed still load, with a warning in the log: their arrays and
configuration are checked as far as they can be without one (finite values), and saving them again adds it.
Refusing them would stop every deployed model at an upgrade, while the manifest guards against accidents
(a truncated copy, an edited file) rather than against an attacker, who could rewrite it too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from vigil.errors import ModelFormatError

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "MANIFEST_VERSION",
    "read_json",
    "read_state",
    "split_state",
    "write_json",
    "write_state",
]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
#: The manifest's file name, and the version of its layout.
MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
_STATE_FILES = ("config.json", "arrays.npz")


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


def read_json(path: Path, *, kind: str, version: int = FORMAT_VERSION) -> dict[str, Any]:
    """Read a config document and check that it is a Vigil ``kind`` of a known format version (at most
    ``version``), holding only finite numbers."""
    if not path.is_file():
        msg = f"{path.parent} is not a saved Vigil {kind}: {path.name} is missing"
        raise ModelFormatError(msg)
    try:
        document = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError) as exc:
        msg = f"{path} is corrupt: {exc}"
        raise ModelFormatError(msg) from exc
    if not isinstance(document, dict) or document.get("format") != f"vigil.{kind}":
        found = document.get("format") if isinstance(document, dict) else None
        msg = f"{path} is not a saved Vigil {kind} (format={found!r})"
        raise ModelFormatError(msg)
    found_version = document.get("format_version")
    if not isinstance(found_version, int) or isinstance(found_version, bool) or not 1 <= found_version <= version:
        msg = (
            f"{path} has format version {found_version!r}; this Vigil reads versions up to {version}: "
            "upgrade Vigil to load it"
        )
        raise ModelFormatError(msg)
    where = _first_nonfinite(document)
    if where is not None:  # write_json never writes NaN or infinity: the file was edited
        msg = f"{path}: field {where} is not a finite number"
        raise ModelFormatError(msg)
    return document


def _first_nonfinite(value: Any, where: str = "") -> str | None:
    """The dotted path of the first NaN or infinity in a JSON document, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return where or "(the document)"
    items: Iterable[tuple[Any, Any]]
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = ((f"[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for key, item in items:
        path = f"{where}{key}" if str(key).startswith("[") else f"{where}.{key}" if where else str(key)
        found = _first_nonfinite(item, path)
        if found is not None:
            return found
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _array_spec(array: np.ndarray) -> dict[str, Any]:
    finite = bool(np.isfinite(array).all()) if np.issubdtype(array.dtype, np.inexact) else True
    return {"shape": list(array.shape), "dtype": array.dtype.str, "finite": finite}


def _write_manifest(directory: Path, arrays: dict[str, np.ndarray]) -> None:
    files = {
        name: {"size": (directory / name).stat().st_size, "sha256": _sha256(directory / name)} for name in _STATE_FILES
    }
    manifest = {
        "format": "vigil.manifest",
        "format_version": MANIFEST_VERSION,
        "files": files,
        "arrays": {key: _array_spec(value) for key, value in arrays.items()},
    }
    write_json(directory / MANIFEST, manifest)


def _read_manifest(directory: Path) -> dict[str, Any] | None:
    """The checked manifest of ``directory``, or None for a directory saved before manifests."""
    path = directory / MANIFEST
    if not path.is_file():
        log.warning(
            "%s was saved before model manifests existed: its files cannot be checked against one; "
            "load and save it again to add it",
            directory,
        )
        return None
    manifest = read_json(path, kind="manifest", version=MANIFEST_VERSION)
    files, arrays = manifest.get("files"), manifest.get("arrays")
    if not isinstance(files, dict) or not isinstance(arrays, dict) or set(files) != set(_STATE_FILES):
        msg = f"{path}: fields 'files' (exactly {list(_STATE_FILES)}) and 'arrays' must be objects"
        raise ModelFormatError(msg)
    for name, expected in files.items():
        file = directory / name
        if not file.is_file():
            msg = f"{directory} is incomplete: {name} is missing"
            raise ModelFormatError(msg)
        if not isinstance(expected, dict):
            msg = f"{path}: field 'files.{name}' must be an object with 'size' and 'sha256'"
            raise ModelFormatError(msg)
        size = file.stat().st_size
        if size != expected.get("size"):
            msg = f"{file}: size is {size} bytes, the manifest says {expected.get('size')!r} (truncated or replaced)"
            raise ModelFormatError(msg)
        if _sha256(file) != expected.get("sha256"):
            msg = f"{file}: sha256 differs from the manifest's: the file changed after it was saved"
            raise ModelFormatError(msg)
    return manifest


def _check_arrays(path: Path, arrays: dict[str, np.ndarray], specs: dict[str, Any] | None) -> None:
    """Each array as the manifest describes it (names, shape, dtype, finite); without one, finite floats."""
    if specs is None:
        for key, value in arrays.items():
            if np.issubdtype(value.dtype, np.inexact) and not np.isfinite(value).all():
                log.warning("%s: array %r holds NaN or infinity (no manifest says whether it should)", path, key)
        return
    missing, extra = sorted(set(specs) - set(arrays)), sorted(set(arrays) - set(specs))
    if missing or extra:
        msg = f"{path}: arrays differ from the manifest: missing {missing}, unexpected {extra}"
        raise ModelFormatError(msg)
    for key, value in arrays.items():
        spec = specs[key]
        if not isinstance(spec, dict):
            msg = f"{path.parent / MANIFEST}: field 'arrays.{key}' must be an object"
            raise ModelFormatError(msg)
        found = _array_spec(value)
        for field in ("shape", "dtype"):
            if found[field] != spec.get(field):
                msg = f"{path}: array {key!r} has {field} {found[field]}, the manifest says {spec.get(field)!r}"
                raise ModelFormatError(msg)
        if spec.get("finite") and not found["finite"]:
            msg = f"{path}: array {key!r} holds NaN or infinity"
            raise ModelFormatError(msg)


def write_state(directory: Path, document: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    np.savez(directory / "arrays.npz", allow_pickle=True, **arrays)
    write_json(directory / "config.json", document)
    _write_manifest(directory, arrays)


def read_state(directory: Path, *, kind: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    directory = Path(directory)
    if not directory.is_dir():
        msg = f"{directory} is not a directory holding a saved Vigil {kind}"
        raise ModelFormatError(msg)
    # The document first: a foreign or newer format says so more usefully than a hash that differs.
    document = read_json(directory / "config.json", kind=kind)
    manifest = _read_manifest(directory)
    arrays_path = directory / "arrays.npz"
    if not arrays_path.is_file():
        msg = f"{directory} is incomplete: arrays.npz is missing"
        raise ModelFormatError(msg)
    try:
        # numpy leaves a path it opened unclosed when the archive is corrupt: hand it an open file instead
        with arrays_path.open("rb") as handle, np.load(handle, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        msg = f"{arrays_path} is corrupt: {exc}"
        raise ModelFormatError(msg) from exc
    _check_arrays(arrays_path, arrays, None if manifest is None else manifest["arrays"])
    return document, arrays
