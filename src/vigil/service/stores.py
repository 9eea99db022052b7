"""Open the alert store named by a URL: ``sqlite:///alerts.db`` (default), a plain path, or PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vigil.errors import InvalidInputError
from vigil.streaming.alert_store import AlertStore

__all__ = ["open_store"]


def open_store(url: str) -> Any:
    """Return an open alert store for ``url``.

    ``sqlite:///alerts.db`` is a file relative to the working directory, ``sqlite:////var/lib/a.db`` an
    absolute one, and a URL without a scheme a plain path. ``postgresql://USER@HOST:PORT/DB?schema=NAME``
    (or ``postgres://``) opens :class:`~vigil.service.postgres_store.PostgresAlertStore`.

    Examples
    --------
    >>> store = open_store("sqlite:///:memory:")
    >>> type(store).__name__
    'AlertStore'
    >>> store.close()
    >>> open_store("mysql://db/alerts")
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidInputError: unsupported store URL scheme 'mysql': use sqlite:///FILE or postgresql://...
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return AlertStore(Path(url))
    if scheme == "sqlite":
        path = rest[1:] if rest.startswith("/") else rest
        if not path:
            msg = f"{url!r} names no file: write sqlite:///alerts.db"
            raise InvalidInputError(msg)
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return AlertStore(path)
    if scheme in ("postgresql", "postgres"):
        from vigil.service.postgres_store import PostgresAlertStore

        return PostgresAlertStore(url)
    msg = f"unsupported store URL scheme {scheme!r}: use sqlite:///FILE or postgresql://..."
    raise InvalidInputError(msg)
