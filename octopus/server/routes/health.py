"""Liveness: the one route that needs no token."""

from __future__ import annotations

from fastapi import APIRouter

from octopus import __version__

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """200 while the server is up."""
    return {"status": "ok", "version": __version__}
