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
:class:`~vigil.errors.NotFittedError` → 409, any other :class:`~vigil.errors.VigilError` → 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
from collections.abc import Awaitable, Callable
from datetime import datetime
from importlib import resources
from typing import Annotated, Any, Literal

from vigil.errors import InvalidInputError, ModelFormatError, NotFittedError, VigilError
from vigil.service._optional import require
from vigil.service.auth import TokenAuth
from vigil.service.incidents_api import incidents_router
from vigil.service.prometheus import CONTENT_TYPE, render_metrics
from vigil.streaming.dead_letters import DEAD_LETTER_KINDS, DeadLetter
from vigil.streaming.messages import Rejection
from vigil.streaming.runtime import Decision, Outcome, Redelivery, Runtime
from vigil.times import parse_time

require("fastapi")
from fastapi import Depends, FastAPI, HTTPException, Query, Request  # noqa: E402
from fastapi.concurrency import run_in_threadpool  # noqa: E402
from fastapi.responses import HTMLResponse, JSONResponse, Response  # noqa: E402
from fastapi.staticfiles import StaticFiles  # noqa: E402
from pydantic import BaseModel, Field  # noqa: E402

__all__ = ["DEFAULT_MAX_BODY_BYTES", "create_app"]

log = logging.getLogger(__name__)

#: Bodies of endpoints other than ``/ingest`` may not be larger than this.
DEFAULT_MAX_BODY_BYTES = 65_536
_UNLABELLED = "application/x-www-form-urlencoded"
DEFAULT_MAX_IMAGE_BYTES = 8 * 1024 * 1024  # a camera frame: a full-HD JPEG is a few hundred KiB


class VerdictBody(BaseModel):
    """An operator's verdict on an alert."""

    verdict: Literal["confirmed", "false_positive", "note"]
    note: str = Field(default="", max_length=4000)
    user: str = Field(default="", max_length=200)


class UndoBody(BaseModel):
    """Who undoes a device's threshold change, and optionally which change is meant (refused unless the latest)."""

    user: str = Field(default="", max_length=200)
    change: int | None = Field(default=None, ge=1)


class ActivateBody(BaseModel):
    """The version to activate."""

    version: str = Field(min_length=1, max_length=64)


class _BodyLimit:
    """ASGI middleware refusing bodies over a limit (413), by Content-Length or by counting the stream."""

    def __init__(self, app: Any, limit_for: Callable[[str], int | None]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        if limit is None:  # the endpoint enforces its own limit
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _too_large(send, limit)
                return
        seen = 0
        responded = False

        async def limited_receive() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Any) -> None:
            nonlocal responded
            responded = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyTooLarge:
            if not responded:
                await _too_large(send, limit)


class _BodyTooLarge(Exception):
    pass


async def _too_large(send: Any, limit: int) -> None:
    body = f'{{"detail": "request body is larger than the limit of {limit} bytes"}}'.encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _scope_dependency(auth: TokenAuth | None, scope: str) -> Callable[[Request], None]:
    def check(request: Request) -> None:
        header = request.headers.get("authorization", "")
        kind, _, token = header.partition(" ")
        if auth is None:
            if scope == "write":
                detail = "this service was started without --token-file: nothing can be written through the API"
                raise HTTPException(status_code=403, detail=detail)
            return
        if kind.lower() != "bearer" or not token:
            raise HTTPException(
                status_code=401,
                detail="an 'Authorization: Bearer TOKEN' header is required",
                headers={"WWW-Authenticate": "Bearer"},
            )
        granted = auth.scope_of(token.strip())
        if granted is None:
            raise HTTPException(status_code=401, detail="unknown token", headers={"WWW-Authenticate": "Bearer"})
        if not auth.allows(token.strip(), scope):
            raise HTTPException(status_code=403, detail=f"this endpoint needs a {scope} token")

    return check


def _outcome_dict(index: int, outcome: Outcome) -> dict[str, Any]:
    if isinstance(outcome, Decision | Redelivery):
        return {"index": index, **outcome.to_dict()}
    return {"index": index, "dead_letter": outcome.kind, "reason": outcome.reason, "device": outcome.device}


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
        version=_vigil_version(),
        docs_url=None,  # served below from local assets: FastAPI's default page loads Swagger UI from a CDN
        redoc_url=None,
    )
    read = Depends(_scope_dependency(auth, "read"))
    write = Depends(_scope_dependency(auth, "write"))
    store = runtime.store
    registry = runtime.registry
    ingest_limit = runtime.config.max_payload_bytes

    def limit_for(path: str) -> int | None:
        # /ingest reads its body itself, so that an oversized payload also becomes a dead letter.
        if path == "/ingest":
            return None
        return max_image_bytes if path.startswith("/ingest/image/") else max_body_bytes

    app.add_middleware(_BodyLimit, limit_for=limit_for)

    @app.exception_handler(VigilError)
    async def vigil_error(request: Request, exc: VigilError) -> JSONResponse:
        if isinstance(exc, InvalidInputError | ModelFormatError):  # a stored version that does not load is bad input
            code = 422
        elif isinstance(exc, NotFittedError):
            code = 409
        else:
            log.error("%s %s failed: %s", request.method, request.url.path, exc)
            code = 500
        return JSONResponse(status_code=code, content={"detail": str(exc)})

    # -- ingestion -----------------------------------------------------------------------------------

    async def dead_letter(rejection: Rejection, raw: bytes | str = b"") -> None:
        """Queue a refusal as a dead letter and wait (at most ``ingest_timeout``) until it is stored, as
        /ingest waits for its outcomes: a client that reads /dead-letters after the error finds it there."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.wrap_future(runtime.reject(rejection, "http", raw)), ingest_timeout)

    @app.post("/ingest", dependencies=[write], tags=["ingest"])
    async def ingest(request: Request) -> JSONResponse:
        """Score telemetry: one record, an array of records, or ``{"records": [...]}``.

        Answers 200 with one outcome per record (a decision, a redelivery, or the dead-letter reason) once the
        decisions are stored; 422 when every record was refused; 413 over the size limit; 415 when a
        Content-Type other than JSON is declared (none, or curl's default form type, is read as JSON).
        """
        media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        # curl -d and urllib label every body application/x-www-form-urlencoded unless told otherwise: that
        # label says nothing about the body, so it is read as JSON like a body without a Content-Type.
        if media and media not in ("application/json", _UNLABELLED) and not media.endswith("+json"):
            # A client that labels its body as something else is misconfigured: say so, and keep the evidence.
            detail = f"Content-Type {media!r} is not JSON: send application/json (or no Content-Type)"
            await dead_letter(Rejection("invalid_json", detail), b"")
            raise HTTPException(status_code=415, detail=detail)
        reason = f"payload is larger than the limit of {ingest_limit} bytes"
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > ingest_limit:
            await dead_letter(Rejection("oversized", f"{reason} ({declared} bytes declared)"))
            raise HTTPException(status_code=413, detail=reason)
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > ingest_limit:
                await dead_letter(Rejection("oversized", reason), bytes(body[:1024]))
                raise HTTPException(status_code=413, detail=reason)
        try:
            future = runtime.submit(bytes(body), "http", timeout=1.0)
        except queue.Full as exc:
            raise HTTPException(
                status_code=503, detail="the service is overloaded; retry", headers={"Retry-After": "1"}
            ) from exc
        try:
            outcomes = await asyncio.wait_for(asyncio.wrap_future(future), ingest_timeout)
        except TimeoutError as exc:
            raise HTTPException(status_code=504, detail="no decision in time; the records stay queued") from exc
        items = [_outcome_dict(i, o) for i, o in enumerate(outcomes)]
        accepted = sum(not isinstance(o, DeadLetter) for o in outcomes)  # a redelivery was accepted before
        content = {"accepted": accepted, "rejected": len(outcomes) - accepted, "results": items}
        return JSONResponse(status_code=200 if accepted else 422, content=content)

    @app.post("/ingest/image/{camera}", dependencies=[write], tags=["ingest"])
    async def ingest_image(camera: str, request: Request, name: str = "frame") -> JSONResponse:
        """Score one camera frame: the JPEG or PNG file as the body; ``name`` (query) labels it in the alert.

        Answers 200 with the score, the threshold and, for a defective frame, the stored alert's id and the
        region of the frame that drove it; 422 (and a dead letter) for a frame that cannot be decoded; 404
        when the service has no camera model; 503 when the alert store cannot take the alert.
        """
        if inspector is None:
            raise HTTPException(status_code=404, detail="no camera model: start the service with --camera-model")
        body = await request.body()
        try:
            result = await run_in_threadpool(inspector.inspect, camera, body, name=name)
        except InvalidInputError as exc:
            await dead_letter(Rejection("invalid_record", str(exc), camera), f"{len(body)} bytes")
            raise HTTPException(status_code=422, detail=str(exc)) from exc
        except Exception as exc:  # the store refused the alert: the sender keeps the frame and retries
            log.exception("camera frame %r from %s could not be stored", name, camera)
            raise HTTPException(
                status_code=503, detail=f"the alert could not be stored ({type(exc).__name__}); retry"
            ) from exc
        return JSONResponse(content=result)

    # -- alerts --------------------------------------------------------------------------------------

    @app.get("/alerts", dependencies=[read], tags=["alerts"])
    def list_alerts(
        device: Annotated[str | None, Query(max_length=128)] = None,
        status: Annotated[str | None, Query(max_length=32)] = None,
        since: Annotated[str | None, Query(max_length=64, description="ISO 8601 with offset")] = None,
        until: Annotated[str | None, Query(max_length=64, description="ISO 8601 with offset")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        """Alerts, newest first, that match every filter given."""
        start = _time_param(since, "since")
        end = _time_param(until, "until")
        alerts = store.list(device=device, status=status, since=start, until=end, limit=limit, offset=offset)
        total = store.count(device=device, status=status, since=start, until=end)
        return {"total": total, "alerts": [alert.to_dict() for alert in alerts]}

    @app.get("/alerts/{alert_id}", dependencies=[read], tags=["alerts"])
    def get_alert(alert_id: str) -> dict[str, Any]:
        """One alert: its explanation, the features that drove it, and the feedback it received."""
        alert = store.get(alert_id)
        if alert is None:
            raise HTTPException(status_code=404, detail=f"no alert with id {alert_id!r}")
        return alert.to_dict()

    @app.get(
        "/alerts/{alert_id}/image",
        dependencies=[read],
        tags=["alerts"],
        response_class=Response,
        responses={200: {"content": {"image/png": {}}}},
    )
    def get_alert_image(alert_id: str) -> Response:
        """A camera alert's frame as the model read it, its anomaly map over it, a colour bar and the threshold
        (PNG); 404 for an alert without one (telemetry and network alerts, detectors that draw no map)."""
        image = store.get_image(alert_id)
        if image is None:
            detail = f"alert {alert_id!r} has no image: only camera alerts of a model with anomaly maps carry one"
            raise HTTPException(status_code=404, detail=detail)
        media_type, data = image
        # A camera alert's image is drawn once, when the frame is scored: the dashboard need not fetch it again.
        return Response(content=data, media_type=media_type, headers={"Cache-Control": "private, max-age=3600"})

    @app.post("/alerts/{alert_id}/verdict", dependencies=[write], tags=["alerts"])
    def post_verdict(alert_id: str, body: VerdictBody) -> dict[str, Any]:
        """Record a verdict; a false positive raises the device's threshold within bounds (``threshold_change``)."""
        if store.get(alert_id) is None:
            raise HTTPException(status_code=404, detail=f"no alert with id {alert_id!r}")
        alert = store.add_verdict(alert_id, body.verdict, note=body.note, user=body.user)
        change = runtime.apply_verdict(alert)
        return {
            "alert": alert.to_dict(),
            "device_threshold": None if change is None else change.new,
            "threshold_change": None if change is None else change.to_dict(),
        }

    @app.get("/dead-letters", dependencies=[read], tags=["alerts"])
    def list_dead_letters(
        kind: Annotated[str | None, Query(max_length=32)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        """Refused messages and records, newest first, with their reasons, and how many of each kind are stored."""
        letters = store.list_dead_letters(kind=kind, limit=limit, offset=offset)
        # The kinds are a fixed, short list, so one count each tells an operator what goes wrong without paging.
        counts = {k: store.count_dead_letters(k) for k in DEAD_LETTER_KINDS}
        return {
            "total": store.count_dead_letters(kind),
            "by_kind": {k: n for k, n in counts.items() if n},
            "dead_letters": [d.to_dict() for d in letters],
        }

    app.include_router(incidents_router(store, read))

    # -- models --------------------------------------------------------------------------------------

    @app.get("/models", dependencies=[read], tags=["models"])
    def list_models() -> dict[str, Any]:
        """Served models, the active version of each, and every stored version (for rollback)."""
        models = runtime.models()
        for model in models:
            model["versions"] = [info.to_dict() for info in registry.versions(model["name"])]
        return {"models": models}

    @app.post("/models/{name}/activate", dependencies=[write], tags=["models"])
    def activate(name: str, body: ActivateBody) -> dict[str, Any]:
        """Hot-swap a stored version in, without losing queued telemetry."""
        previous = runtime.activate(name, body.version, reason="activated through the API")
        return {"model": name, "version": body.version, "previous": previous}

    @app.post("/models/{name}/rollback", dependencies=[write], tags=["models"])
    def rollback(name: str) -> dict[str, Any]:
        """Go back to the version that was active before the current one."""
        version = runtime.rollback(name)
        return {"model": name, "version": version}

    @app.get("/models/{name}/drift", dependencies=[read], tags=["models"])
    def drift(name: str) -> dict[str, Any]:
        """Whether recent scores still look like the training scores."""
        return {"model": name, **runtime.drift(name).to_dict()}

    # -- devices -------------------------------------------------------------------------------------

    @app.get("/devices", dependencies=[read], tags=["devices"])
    def devices() -> dict[str, Any]:
        """Devices seen since the service started, with their last score."""
        return {"devices": runtime.devices()}

    @app.get("/devices/{device}/timeline", dependencies=[read], tags=["devices"])
    def timeline(device: str) -> dict[str, Any]:
        """The device's recent scores and thresholds, oldest first, and its recent alerts."""
        points = runtime.timeline(device)
        alerts = store.list(device=device, limit=50)
        return {"device": device, "points": points, "alerts": [a.to_dict() for a in alerts]}

    @app.get("/devices/{device}/threshold", dependencies=[read], tags=["devices"])
    def device_threshold(device: str) -> dict[str, Any]:
        """The device's threshold set by feedback, its model's, the bounds, the guard, and every change."""
        view = runtime.device_threshold(device)
        if view is None:
            raise HTTPException(status_code=404, detail=f"no served model knows device {device!r}")
        return view

    @app.post("/devices/{device}/threshold/undo", dependencies=[write], tags=["devices"])
    def undo_threshold(device: str, body: UndoBody | None = None) -> dict[str, Any]:
        """Restore the value before the device's latest threshold change still in force; 422 if there is none."""
        body = body or UndoBody()
        change = runtime.undo_threshold(device, who=body.user, change_id=body.change)
        if change is None:
            raise HTTPException(status_code=404, detail=f"no served model knows device {device!r}")
        return {"change": change.to_dict(), "threshold": runtime.device_threshold(device)}

    # -- operations ----------------------------------------------------------------------------------

    @app.get("/health", tags=["operations"])
    def health() -> JSONResponse:
        """200 while the runtime runs ("ok", or "degraded" with the reasons), 503 once it stopped; the queue
        depth, served versions and transport status."""
        reasons = runtime.health() if runtime.running else ["the runtime is not running"]
        content: dict[str, Any] = {
            "status": "stopped" if not runtime.running else "degraded" if reasons else "ok",
            "reasons": reasons,
            "queue_depth": runtime.queue_depth,
            "models": {m["name"]: m["version"] for m in runtime.models()},
        }
        if status is not None:
            content.update(status())
        return JSONResponse(status_code=200 if runtime.running else 503, content=content)

    @app.get("/metrics", tags=["operations"])
    def metrics() -> Response:
        """Prometheus metrics."""
        return Response(content=render_metrics(runtime), media_type=CONTENT_TYPE)

    # -- dashboard -----------------------------------------------------------------------------------

    static = resources.files("vigil.service") / "static"

    @app.get("/", include_in_schema=False)
    def dashboard() -> HTMLResponse:
        return HTMLResponse((static / "index.html").read_text(encoding="utf-8"))

    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    _add_offline_docs(app)
    return app


def _add_offline_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI from the assets the ``fastapi-offline`` package ships, so it works offline."""
    from fastapi.openapi.docs import get_swagger_ui_html

    assets = resources.files(require("fastapi_offline")) / "static"
    app.mount("/docs-assets", StaticFiles(directory=str(assets)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} · API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon.png",
        )


def _time_param(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    return parse_time(value, name)


def _vigil_version() -> str:
    import vigil

    return vigil.__version__
