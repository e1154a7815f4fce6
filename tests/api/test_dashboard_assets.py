"""The dashboard's files: served by the API itself, under a strict Content-Security-Policy."""

from __future__ import annotations

from api.dashboard import STATIC


async def test_the_page_and_its_modules_are_served_with_a_strict_policy(api):
    page = await api.client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "/dashboard/app.js" in page.text
    for name in ("app.js", "api.js", "style.css", "favicon.svg"):
        r = await api.client.get(f"/dashboard/{name}")
        assert r.status_code == 200 and r.content == (STATIC / name).read_bytes()
    js = await api.client.get("/dashboard/app.js")
    assert js.headers["content-type"].startswith("text/javascript")


async def test_only_the_listed_files_are_served(api):
    for path in ("/dashboard/nope.js", "/dashboard/..%2F__init__.py", "/dashboard/index.htm"):
        assert (await api.client.get(path)).status_code == 404


async def test_no_asset_comes_from_elsewhere():
    for path in STATIC.iterdir():
        text = path.read_text()
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in text
