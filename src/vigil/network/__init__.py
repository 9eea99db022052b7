"""Network traffic: flow records and packet captures, their features, detectors and incident typing.

Submodules are imported on demand (``vigil.network.flows``, ``vigil.network.pcap``, ...) so that importing
this package pulls in neither PyTorch nor dpkt.
"""

from __future__ import annotations

__all__: list[str] = []
