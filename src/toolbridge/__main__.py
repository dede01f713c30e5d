"""``python -m toolbridge`` is the ``toolbridge`` command."""

from toolbridge.cli import main

main()
