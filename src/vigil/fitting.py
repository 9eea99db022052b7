"""Fit a pipeline on a file and save it as ``vigil fit`` does: a table, a packet capture, or one model per asset.

Each function takes ``make`` (a callable returning an unfitted :class:`~vigil.pipeline.Pipeline`), fits on
the normal rows (labelled anomalies are left out: the detectors learn normal behaviour), saves the model
with its ``input.json`` (what :func:`vigil.scoring.score_file` reads back) and returns a one-line summary.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vigil.errors import InvalidInputError

__all__ = ["fit_capture_file", "fit_fleet", "fit_table", "normal_rows", "refuse_supervised"]

Make = Callable[[], Any]


def refuse_supervised(detector: str) -> None:
    """Refuse a supervised detector: `vigil fit` learns normal behaviour from the normal rows only."""
    from vigil.registry import available_detectors

    cls = available_detectors().get(detector)
    if cls is not None and cls.requires_y:
        msg = (
            f"--detector {detector} is supervised (it learns attacks from labelled rows), and `vigil fit` trains "
            "on the normal rows only: fit it in Python with fit(X, y), or run "
            f"`vigil bench --dataset nsl-kdd --detector {detector}`"
        )
        raise InvalidInputError(msg)


def normal_rows(table: Any) -> tuple[Any, Any, int]:
    """``(X, group, n_left_out)``: a table's rows not labelled anomalous, their groups, how many were left out."""
    if table.y is None or not table.y.any():
        return table.X, table.group, 0
    keep = ~table.y
    group = None if table.group is None else table.group[keep]
    return table.X.loc[keep].reset_index(drop=True), group, int(table.y.sum())


def fit_capture_file(make: Make, capture: str | Path, output: str | Path, *, detector: str) -> str:
    """Fit on a benign packet capture's per-packet features and save the model (``"kind": "capture"``)."""
    from vigil.network.capture import read_packets_as_table

    X, _ = read_packets_as_table(capture)
    pipe = make().fit(X)
    out = pipe.save(output)
    (out / "input.json").write_text(json.dumps({"kind": "capture", "features": pipe.feature_names_in_}, indent=2))
    return (
        f"fitted {detector} on {len(X)} packets of {Path(capture).name} ({X.shape[1]} features); "
        f"threshold {pipe.threshold_:.4g}; model {pipe.version_} saved to {out}"
    )


def fit_table(
    make: Make, table: Any, output: str | Path, *, detector: str, layout: dict[str, Any], source: str | Path
) -> str:
    """Fit on a table's normal rows and save the model with ``layout`` (how to read its files) as input.json.

    ``source`` names the training file in errors. With ``--detector auto`` the summary starts with the
    selection's description.
    """
    X, _, _ = normal_rows(table)
    try:
        pipe = make().fit(X)
    except InvalidInputError as exc:
        msg = f"{source}: {exc}"  # the library names rows and columns, the file is the caller's to name
        raise InvalidInputError(msg) from exc
    out = pipe.save(output)
    layout = {**layout, "features": pipe.feature_names_in_, "categorical": list(table.categorical)}
    (out / "input.json").write_text(json.dumps(layout, indent=2) + "\n")
    selection = getattr(pipe, "selection_", None)
    lines = []
    name = detector
    if selection is not None:
        from vigil.tuning.auto import describe_selection

        lines.append(describe_selection(selection))
        name = f"auto ({selection['chosen']['label']}, {selection['chosen']['alarm_rule']} alarms)"
    lines.append(
        f"fitted {name} on {len(X)} rows × {X.shape[1]} columns; "
        f"threshold {pipe.threshold_:.4g}; model {pipe.version_} saved to {out}"
    )
    return "\n".join(lines)


def fit_fleet(
    make: Make,
    table: Any,
    output: str | Path,
    *,
    detector: str,
    group_by: str,
    source: str | Path,
    ray: bool = False,
    workers: int = 2,
    address: str | None = None,
) -> tuple[str, list[str], int]:
    """Fit one model per asset (``table.group``) as one fleet and add each to the model registry at ``output``,
    active under the asset's name; ``source`` names the training file in the registry's records.

    Returns the summary, the reasons of the assets skipped, and how many were added (0: none could be fitted).
    """
    from vigil.fleet import fit_groups
    from vigil.streaming.model_registry import ModelRegistry

    X, groups, _ = normal_rows(table)
    if ray:
        from vigil.scale.ray_fleet import fit_groups_with_ray

        fleet = fit_groups_with_ray(X, groups, make(), workers=workers, address=address)
    else:
        fleet = fit_groups(X, groups, make())
    registry = ModelRegistry(output)
    skipped = dict(fleet.reasons)
    added = 0
    for name, pipe in fleet.fitted.items():
        meta = {"trained_on": str(source), "group_by": group_by, "asset": name}
        try:
            registry.add(name, pipe, activate=True, meta=meta, reason=f"vigil fit --group-by {group_by}")
        except InvalidInputError as exc:  # an asset name that cannot be a model name
            skipped[name] = f"{name}: {exc}"
            continue
        added += 1
    summary = (
        f"fitted {detector} for {added} of {added + len(skipped)} {group_by} values "
        f"({len(fleet.batched)} trained as {'fleets on Ray' if ray else 'one fleet'}); "
        f"models saved to registry {output}"
    )
    return summary, list(skipped.values()), added
