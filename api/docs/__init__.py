"""The interactive API reference: `GET /docs`, Swagger UI served from this package.

FastAPI's own /docs page loads Swagger UI from a CDN and starts it with an inline script, on
the dashboard's origin, where the signed-in key sits in sessionStorage: whoever serves that
CDN file could read it. Here the files ship with Conveyor (swagger-ui-dist, Apache-2.0, see
`static/SWAGGER-UI-LICENSE`), so /docs works offline, and the page's Content-Security-Policy
lets scripts come from this server only.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

STATIC = Path(__file__).with_name("static")
SWAGGER_UI_VERSION = "5.35.0"

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}

# Swagger UI sets style attributes as it renders, hence 'unsafe-inline' for styles only; a
# style cannot read storage. Its "try it out" calls this API ('self').
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
FILES = {p.name: p for p in STATIC.iterdir() if p.suffix in _TYPES}

router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def docs() -> Response:
    return FileResponse(STATIC / "index.html", media_type=_TYPES[".html"], headers=HEADERS)


@router.get("/docs/{name}")
async def asset(name: str) -> Response:
    path = FILES.get(name)
    if path is None or path.suffix == ".html":
        return Response("not found", status_code=404, media_type="text/plain", headers=HEADERS)
    return FileResponse(path, media_type=_TYPES[path.suffix], headers=HEADERS)
