"""Octopus: distributed task orchestration with one server, many agents and Python plugins."""

__version__ = "0.1.0"
