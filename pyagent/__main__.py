"""``python -m pyagent``."""

from pyagent.cli import main

main()
