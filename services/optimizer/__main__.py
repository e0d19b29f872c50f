"""Entry point of the optimizer container and CLI: wiring only (python -m services.optimizer [solve|analyze|serve])."""

from __future__ import annotations

import sys

from services.optimizer.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
