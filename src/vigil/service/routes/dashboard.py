"""The dashboard (``GET /`` and ``/static``) and the API's Swagger UI (``/docs``), both served offline.

FastAPI's default ``/docs`` page loads Swagger UI from a CDN; this one serves the assets that the
``fastapi-offline`` package ships. A router cannot carry mounts, so :func:`mount_static` adds the two file
folders to the app.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from vigil.service._optional import require

__all__ = ["mount_static", "router"]

router = APIRouter(include_in_schema=False)

_STATIC = resources.files("vigil.service") / "static"


@router.get("/")
def dashboard() -> HTMLResponse:
    return HTMLResponse((_STATIC / "index.html").read_text(encoding="utf-8"))


@router.get("/docs")
def docs(request: Request) -> HTMLResponse:
    app = request.app
    return get_swagger_ui_html(
        openapi_url=app.openapi_url or "/openapi.json",
        title=f"{app.title} · API",
        swagger_js_url="/docs-assets/swagger-ui-bundle.js",
        swagger_css_url="/docs-assets/swagger-ui.css",
        swagger_favicon_url="/docs-assets/favicon.png",
    )


def mount_static(app: FastAPI) -> None:
    """Serve the dashboard's files at ``/static`` and Swagger UI's at ``/docs-assets``."""
    app.mount("/static", StaticFiles(directory=str(_STATIC)), name="static")
    assets = resources.files(require("fastapi_offline")) / "static"
    app.mount("/docs-assets", StaticFiles(directory=str(assets)), name="docs-assets")
