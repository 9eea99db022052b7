"""Hostile inputs for checking that a Vigil deployment refuses what it must: telemetry and model directories.

:func:`hostile_payload` writes one telemetry payload of a given hostile kind (a 4,301-digit integer, a time
past the range, a device id with ``/``, broken JSON...) with the dead-letter kind it must get;
:func:`valid_payload` writes a well-formed one. Each tampering of :data:`TAMPERINGS` takes a saved pipeline
directory and changes it the way an accident or a careless edit would (a truncated copy, an edited
threshold, a removed array, a garbage file). Loading the result must raise one
:class:`~vigil.errors.ModelFormatError` naming what is wrong; the test suite and
``benchmarks/fuzz_service.py`` apply them all. With ``reseal=True`` the manifest is removed as well, so
that the checks behind it (finite configuration, array shapes, a scoring smoke test) are exercised too.

Examples
--------
>>> sorted(TAMPERINGS)[:3]
['arrays_garbage', 'arrays_missing', 'arrays_pickle']
"""

from __future__ import annotations

import io
import json
import random
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vigil.persistence import MANIFEST

__all__ = ["HOSTILE_KINDS", "TAMPERINGS", "hostile_payload", "tamper", "valid_payload"]


def _edit_json(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))  # allow_nan: json writes NaN as a bare literal, as an editor would


def _edit_arrays(path: Path, change: Callable[[dict[str, np.ndarray]], None]) -> None:
    with np.load(path, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    change(arrays)
    np.savez(path, **arrays)


def _set(keys: tuple[str, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        target = document
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return change


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda document: document.pop(key, None)


def _array(name: str, make: Callable[[np.ndarray], np.ndarray | None]) -> Callable[[dict[str, np.ndarray]], None]:
    def change(arrays: dict[str, np.ndarray]) -> None:
        value = make(arrays[name])
        if value is None:
            del arrays[name]
        else:
            arrays[name] = value

    return change


def _pickled_npz(path: Path) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mean_.npy", buffer.getvalue())


def _replace_with_file(directory: Path) -> None:
    shutil.rmtree(directory)
    directory.write_text("a file, not a model")


def _empty_directory(directory: Path) -> None:
    shutil.rmtree(directory)
    directory.mkdir()


def _tamperings() -> dict[str, Callable[[Path], object]]:
    det = "detector"
    cases: dict[str, Callable[[Path], object]] = {
        "threshold_nan": lambda d: _edit_json(d / "config.json", _set(("threshold", "threshold"), float("nan"))),
        "threshold_inf": lambda d: _edit_json(d / "config.json", _set(("threshold", "threshold"), float("inf"))),
        "threshold_text_nan": lambda d: _edit_json(d / "config.json", _set(("threshold", "threshold"), "nan")),
        "threshold_missing": lambda d: _edit_json(d / "config.json", lambda doc: doc["threshold"].pop("threshold")),
        "threshold_list": lambda d: _edit_json(d / "config.json", _set(("threshold",), [1, 2])),
        "feature_names_missing": lambda d: _edit_json(d / "config.json", _drop("feature_names")),
        "feature_names_short": lambda d: _edit_json(d / "config.json", lambda doc: doc["feature_names"].pop()),
        "feature_names_number": lambda d: _edit_json(d / "config.json", _set(("feature_names",), 3)),
        "scaler_unknown": lambda d: _edit_json(d / "config.json", _set(("scaler",), "magic")),
        "holdout_text": lambda d: _edit_json(d / "config.json", _set(("holdout",), "half")),
        "format_foreign": lambda d: _edit_json(d / "config.json", _set(("format",), "sklearn.pickle")),
        "format_version_future": lambda d: _edit_json(d / "config.json", _set(("format_version",), 99)),
        "format_version_text": lambda d: _edit_json(d / "config.json", _set(("format_version",), "1")),
        "config_garbage": lambda d: (d / "config.json").write_bytes(b"\x00\xff garbage {"),
        "config_empty": lambda d: (d / "config.json").write_bytes(b""),
        "config_array": lambda d: (d / "config.json").write_text("[1, 2, 3]"),
        "config_deep": lambda d: (d / "config.json").write_text("[" * 100_000),
        "config_missing": lambda d: (d / "config.json").unlink(),
        "arrays_missing": lambda d: (d / "arrays.npz").unlink(),
        "arrays_truncated": lambda d: (d / "arrays.npz").write_bytes((d / "arrays.npz").read_bytes()[:100]),
        "arrays_garbage": lambda d: (d / "arrays.npz").write_bytes(b"PK\x03\x04 not really a zip"),
        "arrays_pickle": lambda d: _pickled_npz(d / "arrays.npz"),
        "scaler_center_nan": lambda d: _edit_arrays(d / "arrays.npz", _array("scaler_center", lambda a: a * np.nan)),
        "scaler_center_short": lambda d: _edit_arrays(d / "arrays.npz", _array("scaler_center", lambda a: a[:-1])),
        "scaler_scale_missing": lambda d: _edit_arrays(d / "arrays.npz", _array("scaler_scale", lambda a: None)),
        "scaler_scale_text": lambda d: _edit_arrays(
            d / "arrays.npz", _array("scaler_scale", lambda a: np.array(["x"] * a.size))
        ),
        "detector_missing": lambda d: shutil.rmtree(d / det),
        "detector_state_removed": lambda d: _edit_json(d / det / "config.json", _drop("state")),
        "detector_state_list": lambda d: _edit_json(d / det / "config.json", _set(("state",), [1])),
        "detector_params_text": lambda d: _edit_json(d / det / "config.json", _set(("params",), "n_components=1")),
        "detector_params_unknown": lambda d: _edit_json(d / det / "config.json", _set(("params", "bogus"), 1)),
        "detector_name_unknown": lambda d: _edit_json(d / det / "config.json", _set(("detector",), "no-such")),
        "detector_n_features_wrong": lambda d: _edit_json(
            d / det / "config.json", _set(("state", "n_features_in_"), 9)
        ),
        "detector_config_garbage": lambda d: (d / det / "config.json").write_text("{{{"),
        "components_transposed": lambda d: _edit_arrays(d / det / "arrays.npz", _array("components_", np.transpose)),
        "components_wide": lambda d: _edit_arrays(
            d / det / "arrays.npz", _array("components_", lambda a: np.hstack([a, a]))
        ),
        "components_nan": lambda d: _edit_arrays(d / det / "arrays.npz", _array("components_", lambda a: a * np.nan)),
        "components_int": lambda d: _edit_arrays(
            d / det / "arrays.npz", _array("components_", lambda a: a.astype(int))
        ),
        "components_3d": lambda d: _edit_arrays(d / det / "arrays.npz", _array("components_", lambda a: a[None])),
        "mean_missing": lambda d: _edit_arrays(d / det / "arrays.npz", _array("mean_", lambda a: None)),
        "mean_empty": lambda d: _edit_arrays(d / det / "arrays.npz", _array("mean_", lambda a: a[:0])),
        "mean_inf": lambda d: _edit_arrays(d / det / "arrays.npz", _array("mean_", lambda a: a + np.inf)),
        "eigenvalues_negative": lambda d: _edit_arrays(d / det / "arrays.npz", _array("eigenvalues_", lambda a: -a)),
        "eigenvalues_zero": lambda d: _edit_arrays(d / det / "arrays.npz", _array("eigenvalues_", lambda a: 0 * a)),
        "extra_array": lambda d: _edit_arrays(d / det / "arrays.npz", lambda arrays: arrays.update(extra_=np.zeros(2))),
        "manifest_garbage": lambda d: (d / MANIFEST).write_text("not json"),
        "manifest_wrong_hash": lambda d: _edit_json(d / MANIFEST, _set(("files", "config.json", "sha256"), "0" * 64)),
        "manifest_wrong_size": lambda d: _edit_json(d / MANIFEST, _set(("files", "arrays.npz", "size"), 1)),
        "manifest_future": lambda d: _edit_json(d / MANIFEST, _set(("format_version",), 99)),
        "manifest_no_files": lambda d: _edit_json(d / MANIFEST, _drop("files")),
        "not_a_directory": _replace_with_file,
        "empty_directory": _empty_directory,
    }
    return cases


#: Every tampering by name: each takes a saved pipeline directory (of a PCA model) and damages it in place.
TAMPERINGS: dict[str, Callable[[Path], object]] = _tamperings()


def tamper(directory: Path, name: str, *, reseal: bool = False) -> Path:
    """Apply tampering ``name`` to ``directory`` in place; with ``reseal``, also remove every manifest.

    Removing the manifests makes the directory look saved before they existed, so that loading it relies on
    the checks that do not need one. Returns ``directory``.
    """
    TAMPERINGS[name](directory)
    if reseal and directory.is_dir():
        for manifest in directory.rglob(MANIFEST):
            manifest.unlink()
    return directory


def valid_payload(device: str, time: float, sensors: list[str], rng: random.Random) -> bytes:
    """One well-formed record of ``sensors`` (values near 0, as the tests' models were trained on)."""
    return json.dumps({"device": device, "time": time, "readings": {s: rng.gauss(0, 1) for s in sensors}}).encode()


def _record(device: str, time: str, readings: str, extra: str = "") -> bytes:
    return f'{{"device": "{device}", "time": {time}, "readings": {{{readings}}}{extra}}}'.encode()


def _readings(sensors: list[str], first: str) -> str:
    return ", ".join([f'"{sensors[0]}": {first}', *(f'"{name}": 0.25' for name in sensors[1:])])


#: Every hostile kind :func:`hostile_payload` writes, with the dead-letter kind each must get.
HOSTILE_KINDS: dict[str, str] = {
    "int_4301_digits": "wrong_type",
    "reading_401_digits": "wrong_type",
    "reading_1e308": "non_finite_score",
    "reading_nan": "non_finite",
    "reading_infinity": "non_finite",
    "reading_1e999": "non_finite",
    "reading_text": "wrong_type",
    "reading_bool": "wrong_type",
    "reading_null": "wrong_type",
    "reading_nested": "wrong_type",
    "sensor_missing": "sensors_mismatch",
    "sensor_extra": "sensors_mismatch",
    "readings_empty": "invalid_record",
    "readings_array": "invalid_record",
    "time_401_digits": "invalid_record",
    "time_overflow_offset": "invalid_record",
    "time_underflow_offset": "invalid_record",
    "time_negative": "invalid_record",
    "time_far_future": "invalid_record",
    "time_no_offset": "invalid_record",
    "time_garbage": "invalid_record",
    "time_long_text": "invalid_record",
    "time_nan": "invalid_record",
    "device_slash": "invalid_record",
    "device_empty": "invalid_record",
    "device_control": "invalid_record",
    "device_long": "invalid_record",
    "device_number": "invalid_record",
    "field_missing": "invalid_record",
    "field_extra": "invalid_record",
    "seq_text": "invalid_record",
    "asset_unknown": "unknown_device",
    "json_truncated": "invalid_json",
    "json_not_utf8": "invalid_json",
    "json_deep": "invalid_json",
    "json_scalar": "invalid_record",
    "json_empty_batch": "invalid_record",
    "json_records_not_array": "invalid_record",
    "json_bare_nan_document": "invalid_record",
    "json_trailing_garbage": "invalid_json",
    "json_duplicate_keys_bad_last": "wrong_type",
}


def hostile_payload(kind: str, device: str, time: float, sensors: list[str], rng: random.Random) -> bytes:
    """One payload of hostile ``kind`` (a key of :data:`HOSTILE_KINDS`) for ``device`` at ``time``.

    Every payload holds at most one record, so that it must become exactly one dead letter.
    """
    t = repr(float(time))
    ok = _readings(sensors, "0.5")
    bodies: dict[str, Callable[[], bytes]] = {
        "int_4301_digits": lambda: _record(device, t, _readings(sensors, "7" * 4301)),
        "reading_401_digits": lambda: _record(device, t, _readings(sensors, "9" * 401)),
        "reading_1e308": lambda: _record(device, t, _readings(sensors, rng.choice(["1e308", "-1.7e308", "9e307"]))),
        "reading_nan": lambda: _record(device, t, _readings(sensors, "NaN")),
        "reading_infinity": lambda: _record(device, t, _readings(sensors, "-Infinity")),
        "reading_1e999": lambda: _record(device, t, _readings(sensors, "1e999")),
        "reading_text": lambda: _record(device, t, _readings(sensors, '"41.2"')),
        "reading_bool": lambda: _record(device, t, _readings(sensors, "true")),
        "reading_null": lambda: _record(device, t, _readings(sensors, "null")),
        "reading_nested": lambda: _record(device, t, _readings(sensors, '{"v": [1, [2]]}')),
        "sensor_missing": lambda: _record(device, t, ok.rsplit(",", 1)[0] if len(sensors) > 1 else '"zz": 1'),
        "sensor_extra": lambda: _record(device, t, ok + ', "rpm": 3'),
        "readings_empty": lambda: _record(device, t, ""),
        "readings_array": lambda: f'{{"device": "{device}", "time": {t}, "readings": [1, 2]}}'.encode(),
        "time_401_digits": lambda: _record(device, "1" * 401, ok),
        "time_overflow_offset": lambda: _record(device, '"9999-12-31T23:59:59-23:59"', ok),
        "time_underflow_offset": lambda: _record(device, '"0001-01-01T00:00:00+01:00"', ok),
        "time_negative": lambda: _record(device, "-1.5", ok),
        "time_far_future": lambda: _record(device, "1e300", ok),
        "time_no_offset": lambda: _record(device, '"2024-05-01T12:00:00"', ok),
        "time_garbage": lambda: _record(device, '"yesterday"', ok),
        "time_long_text": lambda: _record(device, '"' + "2" * 5000 + '"', ok),
        "time_nan": lambda: _record(device, "NaN", ok),
        "device_slash": lambda: _record(f"{device}/../x", t, ok),
        "device_empty": lambda: _record("", t, ok),
        "device_control": lambda: _record(device + "\\u0000", t, ok),
        "device_long": lambda: _record("d" * 129, t, ok),
        "device_number": lambda: f'{{"device": 7, "time": {t}, "readings": {{{ok}}}}}'.encode(),
        "field_missing": lambda: f'{{"device": "{device}", "readings": {{{ok}}}}}'.encode(),
        "field_extra": lambda: _record(device, t, ok, ', "firmware": "1.2"'),
        "seq_text": lambda: _record(device, t, ok, ', "seq": "12"'),
        "asset_unknown": lambda: _record(device, t, ok, ', "asset_type": "no-such-model"'),
        "json_truncated": lambda: _record(device, t, ok)[: rng.randrange(1, 30)],
        "json_not_utf8": lambda: b'{"device": "\xff\xfe' + bytes([0xFF, 0xC0, 0x80]) + b'"}',
        "json_deep": lambda: b"[" * rng.randrange(17, 50_000) + b"]" * 3,
        "json_scalar": lambda: rng.choice([b"3", b'"text"', b"null", b"true"]),
        "json_empty_batch": lambda: rng.choice([b"[]", b'{"records": []}']),
        "json_records_not_array": lambda: b'{"records": {"a": 1}}',
        "json_bare_nan_document": lambda: b"NaN",
        "json_trailing_garbage": lambda: _record(device, t, ok) + b" }",
        "json_duplicate_keys_bad_last": lambda: _record(device, t, ok)[:-2] + f', "{sensors[0]}": "x"}}}}'.encode(),
    }
    return bodies[kind]()
