"""Operator commands that talk to a running API over HTTP, as the frontend does:
`conveyor submit|watch|workers`, `conveyor queues …`, `conveyor jobs …`, `conveyor dead …`.

Every command reads `--api-url` / CONVEYOR_API_URL and `--api-key` / CONVEYOR_API_KEY;
listings print a table, or the API's JSON with `--json`. `watch` exits with a code that says
how the job ended (see WATCH_EXIT).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:  # httpx is imported by the commands that call the API: `conveyor worker`
    from conveyor.client import Client  # starts faster without it (about 0.1 s)

ApiUrl = Annotated[
    str, typer.Option("--api-url", envvar="CONVEYOR_API_URL", help="The API's base URL.")
]
ApiKey = Annotated[
    str,
    typer.Option(
        "--api-key", envvar="CONVEYOR_API_KEY", help="An API key (or a JWT).", show_default=False
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON instead of a table.")]

WATCH_EXIT = {"succeeded": 0, "dead": 3, "cancelled": 4}
"""`conveyor watch` exit codes by the job's final state; 1 is any other failure (the API
unreachable, a bad key, an unknown job), 2 a usage error."""

out = Console()
err = Console(stderr=True)


def _fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(1)


def _client(url: str, key: str) -> Client:
    from conveyor.client import Client

    return Client(url, key)


def _call(url: str, key: str, method: str, path: str, **kw: Any) -> Any:
    from conveyor.client import ApiError, Unreachable

    try:
        with _client(url, key) as client:
            return client.request(method, path, **kw)
    except Unreachable as exc:
        _fail(f"{exc} (set --api-url or CONVEYOR_API_URL)")
    except ApiError as exc:
        _fail(f"{exc.status} {exc.message}")


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def _table(rows: list[dict[str, Any]], columns: list[str], title: str) -> None:
    if not rows:
        out.print(f"no {title}")
        return
    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    out.print(table)


JOB_COLUMNS = ["id", "kind", "queue", "state", "attempt", "progress", "owner", "created_at"]


# -- submit and watch -------------------------------------------------------------------------


def submit(
    kind: Annotated[str, typer.Argument(help="The job kind, e.g. demo.sleep.")],
    api_url: ApiUrl = "http://127.0.0.1:8000",
    api_key: ApiKey = "",
    payload: Annotated[str, typer.Option(help="The payload as JSON.")] = "{}",
    queue: Annotated[str, typer.Option(help="The queue.")] = "default",
    priority: Annotated[int, typer.Option(help="Higher runs first.")] = 0,
    max_attempts: Annotated[int, typer.Option(min=1, help="Attempts before dead.")] = 5,
    idempotency_key: Annotated[str | None, typer.Option(help="Submit at most once.")] = None,
    watch_: Annotated[bool, typer.Option("--watch", help="Follow it until it ends.")] = False,
    as_json: AsJson = False,
) -> None:
    """Submit a job; prints its id (or the job as JSON), then follows it with --watch."""
    try:
        body: dict[str, Any] = {"kind": kind, "payload": json.loads(payload), "queue": queue}
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"--payload is not JSON: {exc}") from None
    body.update(priority=priority, max_attempts=max_attempts)
    if idempotency_key:
        body["idempotency_key"] = idempotency_key
    job = _call(api_url, api_key, "POST", "/v1/jobs", json=body)
    if as_json:
        _print_json(job)
    else:
        out.print(f"job {job['id']} {job['state']} ({job['kind']} on {job['queue']})")
    if watch_:
        watch(job["id"], api_url=api_url, api_key=api_key)


def watch(
    job_id: Annotated[int, typer.Argument(help="The job's id.")],
    api_url: ApiUrl = "http://127.0.0.1:8000",
    api_key: ApiKey = "",
) -> None:
    """Follow a job live (its Server-Sent Events stream): a progress bar and the latest
    message; a dropped connection is resumed where it left off. Exit code: 0 succeeded,
    3 dead, 4 cancelled, 1 anything else went wrong."""
    from conveyor.client import ApiError, StreamEnded, Unreachable

    final: dict[str, Any] | None = None
    with Progress(
        TextColumn("job {task.fields[job]} [bold]{task.fields[state]}[/bold]"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[message]}"),
        console=err,
        transient=False,
    ) as bar:
        task = bar.add_task("", total=100, job=job_id, state="…", message="")
        try:
            with _client(api_url, api_key) as client:
                for event in client.stream(job_id):
                    data = event.data
                    bar.update(
                        task,
                        completed=data["progress"],
                        state=data["state"],
                        # a finished job's last step message is stale: say nothing then
                        message=""
                        if data["state"] == "succeeded"
                        else data.get("progress_message") or "",
                    )
                    final = data
                if final is None:  # 204: it had ended already; show how
                    final = client.get(job_id)
        except StreamEnded as exc:  # the server ended it: the key was revoked, say
            bar.stop()
            _fail(f"the stream ended: {exc.message}")
        except ApiError as exc:
            bar.stop()
            _fail(f"{exc.status} {exc.message}")
        except Unreachable as exc:
            bar.stop()
            _fail(str(exc))
    if final is None or final["state"] not in WATCH_EXIT:
        _fail(f"job {job_id} did not finish while watched")
    if final.get("last_error") and final["state"] != "succeeded":
        error = final["last_error"]
        err.print(f"last error: {error.get('type')}: {error.get('message')}", highlight=False)
    out.print(f"job {job_id} {final['state']}")
    raise typer.Exit(WATCH_EXIT[final["state"]])


# -- listings ---------------------------------------------------------------------------------


queues = typer.Typer(
    help="Queues: list them (no sub-command), pause and resume one, limit how many run.",
    invoke_without_command=True,
)


@queues.callback()
def queues_list(
    ctx: typer.Context,
    api_url: ApiUrl = "http://127.0.0.1:8000",
    api_key: ApiKey = "",
    as_json: AsJson = False,
) -> None:
    """Per queue: queued, running, finished in the last minute, oldest waiting, and whether
    it is paused or limited."""
    if ctx.invoked_subcommand is not None:
        return
    rows = _call(api_url, api_key, "GET", "/v1/queues")
    if as_json:
        _print_json(rows)
        return
    columns = ["queue", "queued", "running", "succeeded_last_minute", "dead_last_minute"]
    _table(rows, [*columns, "oldest_queued_age_s", "paused", "concurrency"], "queues")


QueueArg = Annotated[str, typer.Argument(help="The queue's name.")]


def _control(api_url: str, api_key: str, name: str, body: dict[str, Any]) -> None:
    from urllib.parse import quote

    row = _call(api_url, api_key, "PATCH", f"/v1/queues/{quote(name, safe='')}", json=body)
    limit = "no limit" if row["concurrency"] is None else f"at most {row['concurrency']} running"
    out.print(f"{row['queue']}: {'paused' if row['paused'] else 'claimed'}, {limit}")


@queues.command("pause")
def queues_pause(
    name: QueueArg, api_url: ApiUrl = "http://127.0.0.1:8000", api_key: ApiKey = ""
) -> None:
    """Claim nothing from the queue: running jobs finish, new ones are still accepted."""
    _control(api_url, api_key, name, {"paused": True})


@queues.command("resume")
def queues_resume(
    name: QueueArg, api_url: ApiUrl = "http://127.0.0.1:8000", api_key: ApiKey = ""
) -> None:
    """Claim from the queue again."""
    _control(api_url, api_key, name, {"paused": False})


@queues.command("limit")
def queues_limit(
    name: QueueArg,
    concurrency: Annotated[str, typer.Argument(help="At most this many running, or `none`.")],
    api_url: ApiUrl = "http://127.0.0.1:8000",
    api_key: ApiKey = "",
) -> None:
    """At most CONCURRENCY of the queue's jobs run at once over every worker; `none` lifts it."""
    _control(api_url, api_key, name, {"concurrency": _limit(concurrency)})


def _limit(text: str) -> int | None:
    if text.lower() == "none":
        return None
    if text.isdigit():
        return int(text)
    raise typer.BadParameter(f"{text!r}: a whole number, or none")


KIND_COLUMNS = ["kind", "concurrency", "owner_concurrency", "rate"]


def _flat_rate(row: dict[str, Any]) -> dict[str, Any]:
    """A kind's rate as one cell: `2000 / 3600 s per payload.provider`."""
    rate = row.get("rate_limit")
    text = None
    if rate:
        text = f"{rate['allowed']} / {rate['period_s']:g} s"
        text += f" per {rate['partition']}" if rate["partition"] else ""
    return {**row, "rate": text}


def _show_kind(row: dict[str, Any]) -> None:
    """A kind's controls as a change left them."""
    _table([_flat_rate(row)], [*KIND_COLUMNS, "updated_by"], "kind")


kinds = typer.Typer(
    help="Kinds: list them with their limits (no sub-command), limit how many run or start.",
    invoke_without_command=True,
)


@kinds.callback()
def kinds_list(
    ctx: typer.Context,
    api_url: ApiUrl = "http://127.0.0.1:8000",
    api_key: ApiKey = "",
    as_json: AsJson = False,
) -> None:
    """Every kind, with how many may run at once (over all, and per owner) and its rate."""
    if ctx.invoked_subcommand is None:
        _list(
            api_url, api_key, "/v1/kinds", KIND_COLUMNS, "kinds", as_json=as_json, shape=_flat_rate
        )


@kinds.command("limit")
def kinds_limit(
    kind: Annotated[str, typer.Argument(help="The kind, e.g. strategy.optimize.")],
    concurrency: Annotated[
        str | None, typer.Argument(help="At most this many running over all, or `none`.")
    ] = None,
    per_owner: Annotated[
        str | None, typer.Option(help="At most this many of one owner's running, or `none`.")
    ] = None,
    api_url: ApiUrl = "http://127.0.0.1:8000",
    api_key: ApiKey = "",
) -> None:
    """Limit a kind over every worker and host (`none` lifts a limit; what is not given
    stays). E.g. `conveyor kinds limit strategy.optimize --per-owner 2`."""
    body = {}
    if concurrency is not None:
        body["concurrency"] = _limit(concurrency)
    if per_owner is not None:
        body["owner_concurrency"] = _limit(per_owner)
    if not body:
        raise typer.BadParameter("give CONCURRENCY, --per-owner, or both")
    row = _call(api_url, api_key, "PATCH", f"/v1/kinds/{kind}", json=body)
    _show_kind(row)


@kinds.command("rate")
def kinds_rate(
    kind: Annotated[str, typer.Argument(help="The kind, e.g. prices.ingest.")],
    allowed: Annotated[str, typer.Argument(help="At most this many start per window, or `none`.")],
    period_s: Annotated[
        float | None, typer.Argument(help="The window, in seconds (e.g. 3600).", min=0.001)
    ] = None,
    partition: Annotated[
        str | None,
        typer.Option(
            "--per",
            help="A window per `owner`, or per value of a payload field (`payload.provider`);"
            " default: one for the whole kind.",
        ),
    ] = None,
    api_url: ApiUrl = "http://127.0.0.1:8000",
    api_key: ApiKey = "",
) -> None:
    """Let at most ALLOWED of a kind's jobs start in any PERIOD_S seconds, over every worker
    and host; a job over it waits, queued. E.g. `conveyor kinds rate prices.ingest 2000
    3600 --per payload.provider`; `conveyor kinds rate prices.ingest none` lifts it."""
    count = _limit(allowed)
    if count is None:
        rate = None
    elif period_s is None:
        raise typer.BadParameter("give the window in seconds after ALLOWED, e.g. 2000 3600")
    else:
        rate = {"allowed": count, "period_s": period_s, "partition": partition}
    row = _call(api_url, api_key, "PATCH", f"/v1/kinds/{kind}", json={"rate_limit": rate})
    _show_kind(row)


def workers(
    api_url: ApiUrl = "http://127.0.0.1:8000", api_key: ApiKey = "", as_json: AsJson = False
) -> None:
    """Live workers with their last heartbeat and running jobs."""
    rows = _call(api_url, api_key, "GET", "/v1/workers")
    if as_json:
        _print_json(rows)
        return
    _table(rows, ["id", "queues", "concurrency", "running", "heartbeat_at"], "workers")


jobs = typer.Typer(help="List, show, cancel and retry jobs.", no_args_is_help=True)


@jobs.command("list")
def list_jobs(
    api_url: ApiUrl = "http://127.0.0.1:8000",
    api_key: ApiKey = "",
    state: Annotated[list[str] | None, typer.Option(help="Repeat for several.")] = None,
    kind: Annotated[str | None, typer.Option()] = None,
    queue: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    as_json: AsJson = False,
) -> None:
    """Your jobs (an admin's: everyone's), newest first."""
    params: dict[str, Any] = {"limit": limit, "state": state or []}
    params.update({k: v for k, v in {"kind": kind, "queue": queue}.items() if v})
    found: list[Any] = []
    while True:  # by kind or queue, a page reads a window of ids: it may come back short
        page = _call(api_url, api_key, "GET", "/v1/jobs", params=params)
        found += page["jobs"]
        if len(found) >= limit or page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    if as_json:
        _print_json(found[:limit])
        return
    _table(found[:limit], JOB_COLUMNS, "jobs")


@jobs.command("show")
def show_job(job_id: int, api_url: ApiUrl = "http://127.0.0.1:8000", api_key: ApiKey = "") -> None:
    """One job with its result and errors, as JSON."""
    _print_json(_call(api_url, api_key, "GET", f"/v1/jobs/{job_id}"))


@jobs.command("cancel")
def cancel_job(
    job_id: int, api_url: ApiUrl = "http://127.0.0.1:8000", api_key: ApiKey = ""
) -> None:
    """Cancel a queued job, or ask a running one's worker to stop it."""
    r = _call(api_url, api_key, "POST", f"/v1/jobs/{job_id}/cancel")
    asked = (
        " (its worker is asked to stop it)"
        if r["cancel_requested"] and r["state"] == "running"
        else ""
    )
    out.print(f"job {job_id}: {r['previous_state']} -> {r['state']}{asked}")


@jobs.command("retry")
def retry_job(job_id: int, api_url: ApiUrl = "http://127.0.0.1:8000", api_key: ApiKey = "") -> None:
    """Put a dead or cancelled job back in the queue."""
    r = _call(api_url, api_key, "POST", f"/v1/jobs/{job_id}/retry")
    out.print(f"job {job_id}: {r['state']}")


dead = typer.Typer(help="Dead letters: list them, retry one or all matching.", no_args_is_help=True)


@dead.command("list")
def list_dead(
    api_url: ApiUrl = "http://127.0.0.1:8000",
    api_key: ApiKey = "",
    kind: Annotated[str | None, typer.Option()] = None,
    queue: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    as_json: AsJson = False,
) -> None:
    """Dead jobs, newest first."""
    list_jobs(api_url, api_key, ["dead"], kind, queue, limit, as_json)


@dead.command("retry")
def retry_dead(
    job_id: Annotated[int | None, typer.Argument(help="One job; or use --all.")] = None,
    api_url: ApiUrl = "http://127.0.0.1:8000",
    api_key: ApiKey = "",
    all_: Annotated[bool, typer.Option("--all", help="Every dead job matching (admin).")] = False,
    kind: Annotated[str | None, typer.Option()] = None,
    queue: Annotated[str | None, typer.Option()] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask first.")] = False,
) -> None:
    """Retry one dead job, or with --all every dead job matching --kind/--queue."""
    if (job_id is None) == (not all_):
        raise typer.BadParameter("give a job id or --all, not both")
    if job_id is not None:
        retry_job(job_id, api_url, api_key)
        return
    where = {k: v for k, v in {"kind": kind, "queue": queue}.items() if v}
    if not yes and not typer.confirm(f"Retry every dead job matching {where or 'anything'}?"):
        raise typer.Exit(1)
    r = _call(api_url, api_key, "POST", "/v1/jobs/retry", json={"filter": where})
    out.print(f"retried {r['retried']} job(s)")


def _owner_path(route: str, owner: str) -> str:
    """`route/owner`, the owner quoted (a JWT owner holds slashes; `:` stays readable)."""
    from urllib.parse import quote

    return f"{route}/{quote(owner, safe=':')}"


def _list(
    api_url: str,
    api_key: str,
    path: str,
    columns: list[str],
    title: str,
    *,
    as_json: bool,
    shape: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> None:
    """A group's list (its command without a sub-command): a table (of each row as `shape`
    makes it), or the JSON."""
    rows = _call(api_url, api_key, "GET", path)
    if as_json:
        _print_json(rows)
    else:
        _table([shape(r) for r in rows] if shape else rows, columns, title)


quotas = typer.Typer(
    help="What users may submit: list (no sub-command), set one owner's or `*`'s, clear one.",
    invoke_without_command=True,
)
QUOTA_COLUMNS = ["owner", "priority_min", "priority_max", "queues", "max_queued", "demo_kinds"]


@quotas.callback()
def quotas_list(
    ctx: typer.Context,
    api_url: ApiUrl = "http://127.0.0.1:8000",
    api_key: ApiKey = "",
    as_json: AsJson = False,
) -> None:
    """`*` (every user without a quota of its own) first, then owners with their own."""
    if ctx.invoked_subcommand is None:
        _list(api_url, api_key, "/v1/quotas", QUOTA_COLUMNS, "quotas", as_json=as_json)


def _priorities(text: str) -> tuple[int, int]:
    low, _, high = text.partition("..")
    try:
        return int(low), int(high)
    except ValueError:
        raise typer.BadParameter(f"{text!r}: give MIN..MAX, e.g. -10..10") from None


@quotas.command("set")
def quotas_set(
    owner: Annotated[str, typer.Argument(help="key:NAME, jwt:ISSUER:SUB, or * for every user.")],
    priority: Annotated[str | None, typer.Option(help="MIN..MAX, e.g. -10..10.")] = None,
    queues: Annotated[
        str | None, typer.Option(help="Comma-separated queues it may submit to, or `any`.")
    ] = None,
    max_queued: Annotated[str | None, typer.Option(help="Queued jobs at most, or `none`.")] = None,
    demo: Annotated[
        bool | None, typer.Option("--demo/--no-demo", help="May it submit the demo kinds?")
    ] = None,
    api_url: ApiUrl = "http://127.0.0.1:8000",
    api_key: ApiKey = "",
) -> None:
    """Change what is given; the rest stays as the owner's quota has it (or `*`'s, for an
    owner without one yet)."""
    current = {r["owner"]: r for r in _call(api_url, api_key, "GET", "/v1/quotas")}
    base = dict(current.get(owner) or current["*"])
    body = {k: base[k] for k in QUOTA_COLUMNS[1:]}
    if priority is not None:
        body["priority_min"], body["priority_max"] = _priorities(priority)
    if queues is not None:
        body["queues"] = None if queues == "any" else [q for q in queues.split(",") if q]
    if max_queued is not None:
        if max_queued != "none" and not max_queued.isdigit():
            raise typer.BadParameter(f"{max_queued!r}: a whole number, or none")
        body["max_queued"] = None if max_queued == "none" else int(max_queued)
    if demo is not None:
        body["demo_kinds"] = demo
    row = _call(api_url, api_key, "PUT", _owner_path("/v1/quotas", owner), json=body)
    _table([row], QUOTA_COLUMNS, "quota")


@quotas.command("clear")
def quotas_clear(
    owner: Annotated[str, typer.Argument(help="The owner whose own quota goes.")],
    api_url: ApiUrl = "http://127.0.0.1:8000",
    api_key: ApiKey = "",
) -> None:
    """The owner goes back to `*`'s quota."""
    _call(api_url, api_key, "DELETE", _owner_path("/v1/quotas", owner))
    out.print(f"{owner} now has the default quota")


shares = typer.Typer(
    help="Fair share between owners: list the weights (no sub-command), set one, clear one.",
    invoke_without_command=True,
)
SHARE_COLUMNS = ["owner", "weight", "updated_at", "updated_by"]


@shares.callback()
def shares_list(
    ctx: typer.Context,
    api_url: ApiUrl = "http://127.0.0.1:8000",
    api_key: ApiKey = "",
    as_json: AsJson = False,
) -> None:
    """The owners with a weight of their own; every other owner has 1."""
    if ctx.invoked_subcommand is None:
        _list(api_url, api_key, "/v1/shares", SHARE_COLUMNS, "weights", as_json=as_json)


@shares.command("set")
def shares_set(
    owner: Annotated[str, typer.Argument(help="key:NAME or jwt:ISSUER:SUB.")],
    weight: Annotated[float, typer.Argument(help="0.01 to 100; 2 takes twice the turns of 1.")],
    api_url: ApiUrl = "http://127.0.0.1:8000",
    api_key: ApiKey = "",
) -> None:
    """While several owners have jobs waiting in a queue, each starts jobs in proportion to
    its weight. Applies to the owner's jobs that become ready from now on."""
    row = _call(api_url, api_key, "PUT", _owner_path("/v1/shares", owner), json={"weight": weight})
    _table([row], SHARE_COLUMNS, "weight")


@shares.command("clear")
def shares_clear(
    owner: Annotated[str, typer.Argument(help="The owner whose weight goes back to 1.")],
    api_url: ApiUrl = "http://127.0.0.1:8000",
    api_key: ApiKey = "",
) -> None:
    """The owner goes back to weight 1."""
    _call(api_url, api_key, "DELETE", _owner_path("/v1/shares", owner))
    out.print(f"{owner} now has weight 1")
