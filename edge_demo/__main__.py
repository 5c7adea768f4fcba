"""``python -m edge_demo`` (repository root) or ``python -m gradcon_edge`` (installed): gradcon-edge."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
