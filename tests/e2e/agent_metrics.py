"""Request counts by route from a server's ``/metrics``, to see how agents talk to it."""

from __future__ import annotations

import re

from tests.e2e.harness import ApiClient

CLAIM_ROUTE = "/api/v1/agents/{name}/claim"
BATCH_REPORT_ROUTE = "/api/v1/agents/{name}/reports"
SINGLE_REPORT_ROUTE = "/api/v1/executions/{execution_id}/report"
RELEASE_ROUTE = "/api/v1/agents/{name}/release"

# Greedy: route templates hold braces of their own ({name}).
_COUNT = re.compile(r"^octopus_http_request_duration_seconds_count\{(?P<labels>.*)\} (?P<n>\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def request_counts(api: ApiClient, route: str) -> dict[str, int]:
    """How many POSTs to ``route`` the server answered, by status code."""
    text = api.http.get("/metrics").text
    counts: dict[str, int] = {}
    for line in text.splitlines():
        match = _COUNT.match(line)
        if match is None:
            continue
        labels = dict(_LABEL.findall(match["labels"]))
        if labels.get("route") == route and labels.get("method") == "POST":
            counts[labels["status"]] = counts.get(labels["status"], 0) + int(float(match["n"]))
    return counts


def requests_to(api: ApiClient, route: str) -> int:
    """How many POSTs to ``route`` the server answered, whatever their status."""
    return sum(request_counts(api, route).values())
