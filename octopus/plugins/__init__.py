"""Plugins: the loader that turns a file into actions, and the built-in plugins."""
