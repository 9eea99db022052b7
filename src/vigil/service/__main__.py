"""``python -m vigil.service serve|retrain|replay``."""

from __future__ import annotations

import sys

from vigil.service.cli import main

if __name__ == "__main__":
    sys.exit(main())
