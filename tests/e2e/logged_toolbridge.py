"""``python -m tests.e2e.logged_toolbridge LOG ARGS…``: the ``toolbridge`` command with every logger at
DEBUG appended to the file LOG, as an operator debugging a deployment would run it."""

from __future__ import annotations

import logging
import sys

if __name__ == "__main__":
    logging.basicConfig(
        filename=sys.argv[1], level=logging.DEBUG, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    sys.argv = ["toolbridge", *sys.argv[2:]]
    from toolbridge.cli import main

    main()
