"""The ``octopus`` command line: one module per command group."""
