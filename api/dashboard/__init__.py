"""The operator's dashboard: `GET /` and its static files under `/dashboard/`.

Plain HTML, CSS and ES modules with no build step: what is in `static/` is what the browser
runs, so a fresh machine needs nothing beyond Python to serve it, and nothing comes from a
CDN. The page calls the same REST routes as any client, with the key the person signs in
with (kept in `sessionStorage`), so it has exactly that key's rights.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import Response

from api.static import StaticPages

# Everything is served from here, so the page needs nothing from elsewhere: a script or
# style injected into it (through a job's payload, say) has nowhere to load from and no
# inline code runs.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
STATIC = Path(__file__).with_name("static")
PAGES = StaticPages(STATIC, CSP)

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> Response:
    return PAGES.page()


@router.get("/dashboard/{name}")
async def asset(name: str) -> Response:
    return PAGES.asset(name)
