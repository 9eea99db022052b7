"""The monitoring service: HTTP and MQTT ingestion, alert store, REST API, dashboard, feedback loop.

Install its dependencies with ``pip install 'vigil[service]'``; the modules that need them say so when
they are missing. Start it with ``vigil serve`` (see :mod:`vigil.service.cli`).
"""

from __future__ import annotations

__all__: list[str] = []
