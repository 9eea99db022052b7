"""Connect to a Ray cluster, or start a local one sized for the work, and say what it offers."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from vigil.scale._optional import require

__all__ = ["ray_session"]

log = logging.getLogger(__name__)


@contextmanager
def ray_session(address: str | None = None, *, actors: int = 1) -> Iterator[Any]:
    """Yield the ``ray`` module connected to ``address``, or to a local instance started for ``actors``.

    A local instance gets at least ``actors + 2`` logical CPUs: Ray Data's read tasks (distributed training)
    need CPU slots of their own beside the actors, and on a 2-core machine a pool that takes every slot waits
    forever for its input.
    Logical CPUs are slots, not cores; the operating system shares the real ones. A session that this
    function started is shut down on exit; an existing connection (``ray.init`` done by the caller) is reused
    and left alone.
    """
    ray = require("ray", purpose="Ray scale-out")
    if ray.is_initialized():
        yield ray
        return
    if address:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    else:
        cpus = max(actors + 2, os.cpu_count() or 1)
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
