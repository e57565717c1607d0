"""Pydantic wire models shared by server, agent and CLI, one module per resource."""
