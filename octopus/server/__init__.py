"""The Octopus server: REST API, agent protocol, plugin store and background loops."""
