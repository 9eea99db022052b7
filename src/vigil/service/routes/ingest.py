"""``POST /ingest`` (telemetry records) and ``POST /ingest/image/{camera}`` (camera frames)."""

from __future__ import annotations

import asyncio
import logging
import queue
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from vigil.errors import InvalidInputError
from vigil.service.routes.deps import WRITE, State
from vigil.streaming.dead_letters import DeadLetter
from vigil.streaming.messages import Rejection
from vigil.streaming.runtime_types import Decision, Outcome, Redelivery

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(tags=["ingest"], dependencies=[WRITE])

# curl -d and urllib label every body application/x-www-form-urlencoded unless told otherwise: that label says
# nothing about the body, so it is read as JSON like a body without a Content-Type.
_UNLABELLED = "application/x-www-form-urlencoded"


def _outcome_dict(index: int, outcome: Outcome) -> dict[str, Any]:
    if isinstance(outcome, Decision | Redelivery):
        return {"index": index, **outcome.to_dict()}
    return {"index": index, "dead_letter": outcome.kind, "reason": outcome.reason, "device": outcome.device}


async def _read_body(request: Request, state: State) -> bytes:
    """The body, refused (415, 413) and kept as a dead letter when it is labelled as not JSON or too large."""
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media and media not in ("application/json", _UNLABELLED) and not media.endswith("+json"):
        # A client that labels its body as something else is misconfigured: say so, and keep the evidence.
        detail = f"Content-Type {media!r} is not JSON: send application/json (or no Content-Type)"
        await state.dead_letter(Rejection("invalid_json", detail), b"")
        raise HTTPException(status_code=415, detail=detail)
    limit = state.runtime.config.max_payload_bytes
    reason = f"payload is larger than the limit of {limit} bytes"
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        await state.dead_letter(Rejection("oversized", f"{reason} ({declared} bytes declared)"))
        raise HTTPException(status_code=413, detail=reason)
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            await state.dead_letter(Rejection("oversized", reason), bytes(body[:1024]))
            raise HTTPException(status_code=413, detail=reason)
    return bytes(body)


@router.post("/ingest")
async def ingest(request: Request, state: State) -> JSONResponse:
    """Score telemetry: one record, an array of records, or ``{"records": [...]}``.

    Answers 200 with one outcome per record (a decision, a redelivery, or the dead-letter reason) once the
    decisions are stored; 422 when every record was refused; 413 over the size limit; 415 when a
    Content-Type other than JSON is declared (none, or curl's default form type, is read as JSON).
    """
    body = await _read_body(request, state)  # read here, so that an oversized payload also becomes a dead letter
    try:
        future = state.runtime.submit(body, "http", timeout=1.0)
    except queue.Full as exc:
        raise HTTPException(
            status_code=503, detail="the service is overloaded; retry", headers={"Retry-After": "1"}
        ) from exc
    try:
        outcomes = await asyncio.wait_for(asyncio.wrap_future(future), state.ingest_timeout)
    except TimeoutError as exc:
        raise HTTPException(status_code=504, detail="no decision in time; the records stay queued") from exc
    items = [_outcome_dict(i, o) for i, o in enumerate(outcomes)]
    accepted = sum(not isinstance(o, DeadLetter) for o in outcomes)  # a redelivery was accepted before
    content = {"accepted": accepted, "rejected": len(outcomes) - accepted, "results": items}
    return JSONResponse(status_code=200 if accepted else 422, content=content)


@router.post("/ingest/image/{camera}")
async def ingest_image(camera: str, request: Request, state: State, name: str = "frame") -> JSONResponse:
    """Score one camera frame: the JPEG or PNG file as the body; ``name`` (query) labels it in the alert.

    Answers 200 with the score, the threshold and, for a defective frame, the stored alert's id and the
    region of the frame that drove it; 422 (and a dead letter) for a frame that cannot be decoded; 404
    when the service has no camera model; 503 when the alert store cannot take the alert.
    """
    if state.inspector is None:
        raise HTTPException(status_code=404, detail="no camera model: start the service with --camera-model")
    body = await request.body()
    try:
        result = await run_in_threadpool(state.inspector.inspect, camera, body, name=name)
    except InvalidInputError as exc:
        await state.dead_letter(Rejection("invalid_record", str(exc), camera), f"{len(body)} bytes")
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    except Exception as exc:  # the store refused the alert: the sender keeps the frame and retries
        log.exception("camera frame %r from %s could not be stored", name, camera)
        raise HTTPException(
            status_code=503, detail=f"the alert could not be stored ({type(exc).__name__}); retry"
        ) from exc
    return JSONResponse(content=result)
