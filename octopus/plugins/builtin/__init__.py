"""Built-in plugins shipped with Octopus; each module here is one plugin file."""
