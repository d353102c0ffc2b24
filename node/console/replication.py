"""The Replication page: each peer's figures, conflicts, and validate now."""

from __future__ import annotations

from fastapi import APIRouter

from node.console.web import Pages


def build_router(pages: Pages) -> APIRouter:
    return APIRouter(include_in_schema=False)
