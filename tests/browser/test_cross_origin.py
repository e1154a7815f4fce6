"""A frontend on another origin, in a real Chromium: a page served from a second local
origin submits a job with `fetch`, follows it with `EventSource` (a stream token in the
URL) until it succeeds; the same page from an origin not in CONVEYOR_CORS_ORIGINS is
refused by the browser."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from playwright.async_api import Browser, expect

from stores.keys import create_key

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

PAGE = b"""<!doctype html>
<meta charset="utf-8"><title>frontend</title><pre id="out"></pre>
<script>
const q = new URLSearchParams(location.search);
const api = q.get("api"), auth = { Authorization: "Bearer " + q.get("key") };
const out = document.getElementById("out");
const say = (text) => { out.textContent += text + "\\n"; };
(async () => {
  try {
    const r = await fetch(api + "/v1/jobs", {
      method: "POST",
      headers: { ...auth, "Content-Type": "application/json" },
      body: JSON.stringify({ kind: "demo.progress", payload: { steps: 3, interval_s: 0.3 } }),
    });
    const job = await r.json();
    say("submitted " + job.id + " at " + r.headers.get("Location"));
    const t = await (await fetch(api + "/v1/jobs/" + job.id + "/stream-token",
                                 { method: "POST", headers: auth })).json();
    const events = new EventSource(api + t.url);
    events.addEventListener("progress", (e) => say("progress " + JSON.parse(e.data).progress));
    events.addEventListener("state", (e) => {
      const d = JSON.parse(e.data);
      say("state " + d.state);
      if (d.state === "succeeded") { events.close(); say("done"); }
    });
  } catch (err) {
    say("refused: " + err.name);
  }
})();
</script>
"""


@pytest.fixture
def frontend() -> Iterator[int]:
    """A static server for the page; its port, reachable as 127.0.0.1 and as localhost
    (two origins)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(PAGE)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


@pytest.fixture
async def web_key(conn) -> str:
    return await create_key(conn, "web", "user")


async def test_a_page_on_a_listed_origin_submits_and_follows_a_job_and_others_are_refused(
    browser: Browser, procs, web_key: str, frontend: int
):
    allowed = f"http://127.0.0.1:{frontend}"
    api = procs.start_api(CONVEYOR_CORS_ORIGINS=allowed)
    procs.start_worker("--concurrency", "2", "--processes", "0")
    key, auth = web_key, {"Authorization": f"Bearer {web_key}"}
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(f"{allowed}/?api={api}&key={key}")
        out = page.locator("#out")
        await expect(out).to_contain_text("done", timeout=30_000)
        text = await out.text_content() or ""
        assert "at /v1/jobs/" in text  # Location was exposed to the page
        assert "progress" in text and "state succeeded" in text
        job_id = int(text.split("submitted ", 1)[1].split()[0])
        job = httpx.get(f"{api}/v1/jobs/{job_id}", headers=auth, timeout=10).json()
        assert job["state"] == "succeeded"

        elsewhere = await context.new_page()
        await elsewhere.goto(f"http://localhost:{frontend}/?api={api}&key={key}")
        await expect(elsewhere.locator("#out")).to_contain_text("refused: TypeError")
        jobs = httpx.get(f"{api}/v1/jobs", headers=auth, timeout=10).json()["jobs"]
        assert [j["id"] for j in jobs] == [job_id]  # the preflight failed: no POST ran
    finally:
        await context.close()
