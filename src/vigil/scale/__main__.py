"""``python -m vigil.scale``: the scale-out commands (worker, bridge) on their own."""

from __future__ import annotations

import sys

from vigil.scale.cli import main

if __name__ == "__main__":
    sys.exit(main())
