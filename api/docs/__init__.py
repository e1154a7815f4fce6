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
from fastapi.responses import Response

from api.static import StaticPages

SWAGGER_UI_VERSION = "5.35.0"

# Swagger UI sets style attributes as it renders, hence 'unsafe-inline' for styles only; a
# style cannot read storage. Its "try it out" calls this API ('self').
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
PAGES = StaticPages(Path(__file__).with_name("static"), CSP)

router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def docs() -> Response:
    return PAGES.page()


@router.get("/docs/{name}")
async def asset(name: str) -> Response:
    return PAGES.asset(name)
