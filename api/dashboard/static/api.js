// The REST API as the page uses it: the signed-in key on every request, the API's own error
// message on every failure, and a fetch-based Server-Sent Events reader (EventSource cannot
// send an Authorization header).

const KEY = "conveyor.key";

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  set key(value) {
    if (value) sessionStorage.setItem(KEY, value); else sessionStorage.removeItem(KEY);
  },
};

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

function headers(extra = {}) {
  const h = { ...extra };
  if (session.key) h.Authorization = `Bearer ${session.key}`;
  return h;
}

async function failure(res) {
  let body = null;
  try { body = await res.json(); } catch { /* not JSON: a proxy's page, say */ }
  const e = body && body.error;
  if (e) return new ApiError(res.status, e.code, e.message, e.details);
  return new ApiError(res.status, "http_" + res.status,
    `The server answered ${res.status} ${res.statusText}. Try again; if it persists, check the API's log.`);
}

export async function request(method, path, body) {
  let res;
  try {
    res = await fetch(path, {
      method,
      headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "network", "The API cannot be reached. Check that `conveyor api` is running, then reload.");
  }
  if (res.status === 401) window.dispatchEvent(new CustomEvent("conveyor:unauthorized"));
  if (!res.ok) throw await failure(res);
  if (res.status === 204) return null;
  return res.json();
}

export const get = (path) => request("GET", path);
export const post = (path, body) => request("POST", path, body);
export const patch = (path, body) => request("PATCH", path, body);

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
    else if (v !== undefined && v !== null && v !== "") q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

// A page of `GET /v1/jobs`: a search or a listing by kind or queue reads a bounded window of
// ids per call, so its pages may come back short with a cursor to go on from; this asks on,
// at most `calls` times, until it has `limit` jobs or the cursor ends. `next` is where the
// following page starts (null at the end).
export async function jobsPage(params, { limit, cursor = null, calls = 50, signal } = {}) {
  let jobs = [], next = cursor, made = 0;
  do {
    const page = await get("/v1/jobs" + query({ ...params, limit, cursor: next }));
    jobs = jobs.concat(page.jobs);
    next = page.next_cursor;
    made += 1;
  } while (next && jobs.length < limit && made < calls && !(signal && signal.aborted));
  if (jobs.length > limit) {
    jobs = jobs.slice(0, limit);
    next = String(jobs[limit - 1].id);
  }
  return { jobs, next };
}

// Resolves once the tab is shown (at once if it is), or when `signal` aborts; either way it
// leaves no listener behind.
function shown(signal) {
  if (!document.hidden || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (document.hidden && !signal.aborted) return;
      document.removeEventListener("visibilitychange", done);
      signal.removeEventListener("abort", done);
      resolve();
    };
    document.addEventListener("visibilitychange", done);
    signal.addEventListener("abort", done);
  });
}

// Reads an SSE stream until `signal` aborts or the server ends it for good (a job's terminal
// state, or an `end` event when the credential stops holding); reconnects after a drop,
// resuming with Last-Event-ID. `onStatus` hears
// "live" / "reconnecting" so the page can say whether what it shows is current.
// A hidden tab lets its stream go and resumes it when shown: a browser keeps six
// connections per host over all its tabs, and an open stream holds one the whole time, so
// seven tabs following jobs would otherwise leave the seventh page unable to load at all.
export async function follow(path, { onEvent, onStatus = () => {}, signal, ends = () => false }) {
  let lastId = null;
  while (!signal.aborted) {
    let ended = false;
    await shown(signal);
    if (signal.aborted) return;
    const connection = new AbortController();
    const stop = () => connection.abort();
    const hide = () => { if (document.hidden) connection.abort(); };
    signal.addEventListener("abort", stop, { once: true });
    document.addEventListener("visibilitychange", hide);
    try {
      const h = headers();
      if (lastId) h["Last-Event-ID"] = lastId;
      const res = await fetch(path, { headers: h, signal: connection.signal });
      if (res.status === 204) return;
      if (res.status === 401) window.dispatchEvent(new CustomEvent("conveyor:unauthorized"));
      if (!res.ok) throw await failure(res);
      onStatus("live");
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const ev = {};
          for (const line of block.split("\n")) {
            if (!line || line.startsWith(":")) continue;
            const i = line.indexOf(":");
            ev[line.slice(0, i)] = line.slice(i + 1).trimStart();
          }
          if (!ev.data) continue;
          if (ev.id) lastId = ev.id;
          const data = JSON.parse(ev.data);
          if (ev.event === "end") {  // the server ended it: the key was revoked, the token expired
            window.dispatchEvent(new CustomEvent("conveyor:unauthorized"));
            throw new ApiError(401, data.code, data.message);
          }
          onEvent(ev.event || "message", data);
          if (ends(ev.event, data)) ended = true;
        }
      }
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof ApiError && err.status >= 400 && err.status < 500) throw err;
    } finally {
      signal.removeEventListener("abort", stop);
      document.removeEventListener("visibilitychange", hide);
    }
    if (ended || signal.aborted) return;
    if (connection.signal.aborted) continue;  // hidden: wait to be shown, then resume
    onStatus("reconnecting");
    await new Promise((r) => setTimeout(r, 2000));
  }
}
