"""Vigil: anomaly detection for IoT environments, from device to explained alert."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
