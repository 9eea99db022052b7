"""The service's endpoints, one FastAPI router per area; :func:`vigil.service.app.create_app` includes them.

The routers hold no state: what they serve (runtime, store, token scopes) reaches them through the
dependencies of :mod:`vigil.service.routes.deps`, from the :class:`ServiceState` on ``app.state.vigil``.
"""

from __future__ import annotations

from vigil.service._optional import require

require("fastapi")  # before the routers: each is imported through this package
from vigil.service.routes import alerts, dashboard, devices, incidents, ingest, models, operations  # noqa: E402
from vigil.service.routes.deps import ServiceState  # noqa: E402

__all__ = ["ROUTERS", "ServiceState", "dashboard"]

#: Every area's router, in the order of the API's documentation.
ROUTERS = tuple(area.router for area in (ingest, alerts, incidents, models, devices, operations, dashboard))
