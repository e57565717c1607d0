"""The agent: enrolls, heartbeats, claims executions, runs them in worker processes, reports."""
