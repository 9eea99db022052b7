"""What the service's routers share, as FastAPI dependencies: the runtime, its alert store, the token scopes.

:func:`vigil.service.app.create_app` puts one :class:`ServiceState` on ``app.state.vigil``; the dependencies
read it from the request, so the routers hold no state and are built once, when their modules are imported.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Query, Request

from vigil.alerts import AlertStore
from vigil.service.auth import TokenAuth
from vigil.streaming.messages import Rejection
from vigil.streaming.runtime import Runtime
from vigil.times import parse_time

__all__ = [
    "READ",
    "WRITE",
    "Limit",
    "Offset",
    "RuntimeDep",
    "ServiceState",
    "Since",
    "State",
    "StoreDep",
    "Until",
    "time_param",
]

#: Query parameters of the listing endpoints (alerts, dead letters, incidents).
Since = Annotated[str | None, Query(max_length=64, description="ISO 8601 with offset")]
Until = Annotated[str | None, Query(max_length=64, description="ISO 8601 with offset")]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0)]


@dataclass(frozen=True)
class ServiceState:
    """What the endpoints serve: the runtime (its store and registry), the token scopes and the options.

    Parameters are those of :func:`~vigil.service.app.create_app` of the same names.
    """

    runtime: Runtime
    auth: TokenAuth | None = None
    status: Callable[[], dict[str, Any]] | None = None
    ingest_timeout: float = 30.0
    inspector: Any = None

    async def dead_letter(self, rejection: Rejection, raw: bytes | str = b"") -> None:
        """Queue a refusal as a dead letter and wait (at most ``ingest_timeout``) until it is stored, as
        /ingest waits for its outcomes: a client that reads /dead-letters after the error finds it there."""
        with contextlib.suppress(TimeoutError):
            future = self.runtime.reject(rejection, "http", raw)
            await asyncio.wait_for(asyncio.wrap_future(future), self.ingest_timeout)


def _state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.vigil
    return state


def _runtime(request: Request) -> Runtime:
    return _state(request).runtime


def _store(request: Request) -> AlertStore:
    return _state(request).runtime.store


State = Annotated[ServiceState, Depends(_state)]
RuntimeDep = Annotated[Runtime, Depends(_runtime)]
StoreDep = Annotated[AlertStore, Depends(_store)]


def _scope(scope: str) -> Callable[[Request], None]:
    def check(request: Request) -> None:
        auth = _state(request).auth
        kind, _, token = request.headers.get("authorization", "").partition(" ")
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
        if auth.scope_of(token.strip()) is None:
            raise HTTPException(status_code=401, detail="unknown token", headers={"WWW-Authenticate": "Bearer"})
        if not auth.allows(token.strip(), scope):
            raise HTTPException(status_code=403, detail=f"this endpoint needs a {scope} token")

    return check


#: Route dependencies: the endpoint needs a read token (none when the service runs without tokens) or a write one.
READ = Depends(_scope("read"))
WRITE = Depends(_scope("write"))


def time_param(value: str | None, name: str) -> datetime | None:
    """A time query parameter (ISO 8601 with offset), or None when absent; bad text is a 422 naming ``name``."""
    return None if value is None else parse_time(value, name)
