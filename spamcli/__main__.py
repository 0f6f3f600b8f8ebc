"""``python -m spamcli``."""

from .cli import main

main()
