"""Per-asset models for a fleet too large for one machine: the assets dealt to Ray tasks, one fleet per task.

:func:`vigil.fleet.fit_groups` trains one pipeline per asset on one machine, the detectors as one batched
computation. :func:`fit_groups_with_ray` deals the assets into ``workers`` chunks of about equal rows (the
largest first, each to the chunk with the fewest rows so far) and runs each chunk as one Ray task that
trains its assets as one fleet, so the per-step overhead is paid once per step per task, not once per model.
Every asset's pipeline is the one :func:`~vigil.fleet.fit_groups` gives it (each member of a fleet trains as
it would alone); an asset whose rows are refused gets its named error and the others are unaffected.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from vigil.errors import InvalidInputError
from vigil.fleet import PipelineFleet, fit_pipelines, split_groups
from vigil.pipeline import Pipeline
from vigil.scale.ray_cluster import ray_session

__all__ = ["deal", "fit_groups_with_ray"]


def deal(sizes: dict[str, int], workers: int) -> list[list[str]]:
    """The names in ``sizes`` dealt into at most ``workers`` chunks of about equal total size, none empty.

    Examples
    --------
    >>> deal({"a": 900, "b": 500, "c": 400, "d": 100}, 2)
    [['a', 'd'], ['b', 'c']]
    """
    if workers < 1:
        msg = f"workers must be at least 1, got {workers}"
        raise InvalidInputError(msg)
    chunks: list[list[str]] = [[] for _ in range(min(workers, len(sizes)))]
    loads = [0] * len(chunks)
    for name in sorted(sizes, key=lambda n: (-sizes[n], n)):
        i = int(np.argmin(loads))
        chunks[i].append(name)
        loads[i] += sizes[name]
    return chunks


def fit_groups_with_ray(
    X: pd.DataFrame,
    groups: Any,
    template: Pipeline,
    *,
    workers: int = 2,
    address: str | None = None,
    max_members: int | None = None,
) -> PipelineFleet:
    """:func:`vigil.fleet.fit_groups` with the assets spread over ``workers`` Ray tasks (see the module docstring).

    ``address`` names a running Ray cluster; without it a local instance is started for the call. The result
    lists the assets in the order they first appear in ``groups``, as :func:`~vigil.fleet.fit_groups` does.
    """
    data = split_groups(X, groups)
    chunks = deal({name: len(rows) for name, rows in data.items()}, workers)
    with ray_session(address, actors=len(chunks)) as ray:
        task = ray.remote(num_cpus=1)(fit_pipelines)
        chunk_data = [{name: data[name] for name in chunk} for chunk in chunks]
        parts = ray.get([task.remote(template, rows, max_members=max_members) for rows in chunk_data])
    result = PipelineFleet()
    for name in data:
        part = next(p for p in parts if name in p.fitted or name in p.failed)
        if name in part.fitted:
            result.fitted[name] = part.fitted[name]
        else:
            result.failed[name] = part.failed[name]
        if name in part.batched:
            result.batched.append(name)
    return result
