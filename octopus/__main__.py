"""Entry point for ``python -m octopus``."""

from octopus.cli.main import main

main()
