"""The Keys page (root key only): create, disable, enable, delete, policies."""

from __future__ import annotations

from fastapi import APIRouter

from node.console.web import Pages


def build_router(pages: Pages) -> APIRouter:
    return APIRouter(include_in_schema=False)
