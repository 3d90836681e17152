"""``python -m clients``: see :mod:`clients.cli` (``--help`` explains)."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
