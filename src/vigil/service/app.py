"""The REST API and dashboard of the monitoring service (FastAPI; OpenAPI at ``/docs`` and ``/openapi.json``).

Endpoints (``R`` needs a read token, ``W`` a write token, ``-`` none):

=====  ==================================  =====================================================
scope  endpoint                            what
=====  ==================================  =====================================================
W      ``POST /ingest``                    one record, an array or ``{"records": [...]}``
W      ``POST /ingest/image/{camera}``     one camera frame (JPEG or PNG body), with ``--camera-model``
R      ``GET /alerts``                     filter by device, status, time; paged
R      ``GET /alerts/{id}``                one alert with its explanation and feedback
R      ``GET /alerts/{id}/image``          a camera alert's frame with its anomaly map, colour bar, threshold
W      ``POST /alerts/{id}/verdict``       confirmed / false_positive / note
R      ``GET /incidents``                  asset incidents across modalities, with their alerts
R      ``GET /incidents/{id}``             one incident with all its evidence (every member alert)
R      ``GET /models``                     served models, their versions, per-device thresholds
W      ``POST /models/{name}/activate``    hot-swap a stored version in
W      ``POST /models/{name}/rollback``    back to the previous version
R      ``GET /models/{name}/drift``        recent scores against training scores
R      ``GET /devices``, ``GET /devices/{id}/timeline``   last scores per device
R      ``GET /devices/{id}/threshold``     its feedback threshold, bounds and history (who/when/why)
W      ``POST /devices/{id}/threshold/undo``  undo its latest threshold change (recorded too)
R      ``GET /dead-letters``               refused messages with reasons
``-``  ``GET /health``, ``GET /metrics``   liveness and Prometheus metrics
``-``  ``GET /``                           the dashboard (its API calls carry the token)
=====  ==================================  =====================================================

Errors map in one place: :class:`~vigil.errors.InvalidInputError` and :class:`~vigil.errors.ModelFormatError` → 422,
:class:`~vigil.errors.NotFittedError` → 409, any other :class:`~vigil.errors.VigilError` → 500. Each area's
endpoints are one router of :mod:`vigil.service.routes`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

import vigil
from vigil.errors import InvalidInputError, ModelFormatError, NotFittedError, VigilError
from vigil.service._optional import require
from vigil.service.auth import TokenAuth
from vigil.service.body_limit import BodyLimit
from vigil.service.routes import ROUTERS, ServiceState, dashboard
from vigil.streaming.runtime import Runtime

require("fastapi")
from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402

__all__ = ["DEFAULT_MAX_BODY_BYTES", "DEFAULT_MAX_IMAGE_BYTES", "create_app"]

log = logging.getLogger(__name__)

#: Bodies of endpoints other than ``/ingest`` may not be larger than this.
DEFAULT_MAX_BODY_BYTES = 65_536
DEFAULT_MAX_IMAGE_BYTES = 8 * 1024 * 1024  # a camera frame: a full-HD JPEG is a few hundred KiB


def create_app(
    runtime: Runtime,
    *,
    auth: TokenAuth | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    status: Callable[[], dict[str, Any]] | None = None,
    ingest_timeout: float = 30.0,
    inspector: Any = None,
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
) -> Any:
    """Build the FastAPI app over a running :class:`~vigil.streaming.runtime.Runtime`.

    Parameters
    ----------
    runtime : Runtime
        Scores, stores and serves; its store and registry back the alert and model endpoints.
    auth : TokenAuth or None
        Token scopes. None leaves the read endpoints open and refuses every write.
    max_body_bytes : int
        Body limit of every endpoint but ``/ingest``, whose limit is the runtime's ``max_payload_bytes``.
    status : callable, optional
        Extra fields for ``/health`` (for example the MQTT connection).
    ingest_timeout : float
        Seconds ``/ingest`` waits for its records' decisions before answering 504.
    inspector : CameraInspector or None
        Scores the frames posted to ``/ingest/image/{camera}`` (:mod:`vigil.streaming.sources.camera`); None
        answers 404 there.
    max_image_bytes : int
        Body limit of ``/ingest/image/{camera}``.
    """
    app = FastAPI(
        title="Vigil monitoring service",
        summary="Anomaly detection on IoT telemetry: ingest, alerts, verdicts, models, metrics.",
        version=vigil.__version__,
        docs_url=None,  # served offline by the dashboard router: FastAPI's default page loads Swagger UI from a CDN
        redoc_url=None,
    )
    app.state.vigil = ServiceState(runtime, auth, status, ingest_timeout, inspector)
    app.add_middleware(BodyLimit, limit_for=partial(_body_limit, body=max_body_bytes, image=max_image_bytes))
    app.exception_handler(VigilError)(_vigil_error)
    for router in ROUTERS:
        app.include_router(router)
    dashboard.mount_static(app)
    return app


def _body_limit(path: str, *, body: int, image: int) -> int | None:
    # /ingest reads its body itself, so that an oversized payload also becomes a dead letter.
    if path == "/ingest":
        return None
    return image if path.startswith("/ingest/image/") else body


async def _vigil_error(request: Request, exc: VigilError) -> JSONResponse:
    if isinstance(exc, InvalidInputError | ModelFormatError):  # a stored version that does not load is bad input
        code = 422
    elif isinstance(exc, NotFittedError):
        code = 409
    else:
        log.error("%s %s failed: %s", request.method, request.url.path, exc)
        code = 500
    return JSONResponse(status_code=code, content={"detail": str(exc)})
