"""The API's own static pages (the dashboard, /docs): files from a package folder, each
served with the page's Content-Security-Policy and the same protective headers."""

from __future__ import annotations

from pathlib import Path

from fastapi.responses import FileResponse, Response

TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


class StaticPages:
    """The files of `folder`, listed once, at import: a request names one of them or gets
    404, so no path a client sends ever reaches the filesystem."""

    def __init__(self, folder: Path, csp: str) -> None:
        self.folder = folder
        self.files = {p.name: p for p in folder.iterdir() if p.suffix in TYPES}
        self.headers = {
            "Content-Security-Policy": csp,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            # Short: a new release shows up on the next load without a cache-busting step.
            "Cache-Control": "no-cache",
        }

    def page(self, name: str = "index.html") -> Response:
        return FileResponse(self.folder / name, media_type=TYPES[".html"], headers=self.headers)

    def asset(self, name: str) -> Response:
        path = self.files.get(name)
        if path is None:
            return Response(
                "not found", status_code=404, media_type="text/plain", headers=self.headers
            )
        return FileResponse(path, media_type=TYPES[path.suffix], headers=self.headers)
