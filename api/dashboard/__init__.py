"""The operator's dashboard: `GET /` and its static files under `/dashboard/`.

Plain HTML, CSS and ES modules with no build step: what is in `static/` is what the browser
runs, so a fresh machine needs nothing beyond Python to serve it, and nothing comes from a
CDN. The page calls the same REST routes as any client, with the key the person signs in
with (kept in `sessionStorage`), so it has exactly that key's rights.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

STATIC = Path(__file__).with_name("static")

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}

# Everything is served from here, so the page needs nothing from elsewhere: a script or
# style injected into it (through a job's payload, say) has nowhere to load from and no
# inline code runs.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Short: a new release shows up on the next load without a cache-busting build step.
    "Cache-Control": "no-cache",
}

# The files are listed once, at import: a request names one of them or gets 404, so no
# path a client sends ever reaches the filesystem.
FILES = {p.name: p for p in STATIC.iterdir() if p.suffix in _TYPES}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> Response:
    return FileResponse(STATIC / "index.html", media_type=_TYPES[".html"], headers=HEADERS)


@router.get("/dashboard/{name}")
async def asset(name: str) -> Response:
    path = FILES.get(name)
    if path is None:
        return Response("not found", status_code=404, media_type="text/plain", headers=HEADERS)
    return FileResponse(path, media_type=_TYPES[path.suffix], headers=HEADERS)
