"""`/v1/schedules`: cron schedules, admin only. Workers pick edits up within a second."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response

from api.auth import Admin
from api.errors import ERRORS, ApiError
from api.payloads import validated_payload
from api.routing import GuardedRoute
from api.schemas import SCHEDULE_NAME, JobOut, ScheduleIn, ScheduleOut, SchedulePatch
from jobs.db import Record
from jobs.store import Store
from scheduler import schedules
from scheduler.cron import Cron, CronError
from stores.schedules import ScheduleStore

router = APIRouter(
    route_class=GuardedRoute, prefix="/v1/schedules", tags=["schedules"], responses=ERRORS
)
Name = Annotated[str, Path(min_length=1, max_length=128, pattern=SCHEDULE_NAME)]


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _schedules(request: Request) -> ScheduleStore:
    rows: ScheduleStore = request.app.state.schedules
    return rows


def _checked(request: Request, values: dict[str, Any]) -> dict[str, Any]:
    """Cron, timezone, kind and payload as the scheduler will read them; 422 otherwise."""
    try:
        Cron.parse(values["cron"], values["timezone"])
    except CronError as exc:
        raise ApiError(422, "invalid_cron", str(exc)) from None
    specs = request.app.state.specs
    follow_ups = []
    for i, f in enumerate(values.get("follow_ups") or []):
        try:
            payload = validated_payload(f["kind"], f.get("payload") or {}, specs)
        except ApiError as exc:
            raise ApiError(exc.status, exc.code, f"follow_ups[{i}]: {exc.message}") from None
        follow_ups.append({"kind": f["kind"], "payload": payload})
    return {
        **values,
        "payload": validated_payload(values["kind"], values["payload"], specs),
        "follow_ups": follow_ups,
    }


def _out(row: Record) -> ScheduleOut:
    return ScheduleOut.model_validate(dict(row))


def _not_found(name: str) -> ApiError:
    return ApiError(404, "schedule_not_found", f"there is no schedule named {name!r}")


async def _get(rows: ScheduleStore, name: str) -> Record:
    row = await rows.get(name)
    if row is None:
        raise _not_found(name)
    return row


@router.get("", response_model=list[ScheduleOut])
async def list_schedules(request: Request, _admin: Admin) -> list[ScheduleOut]:
    """Every schedule, enabled or not, with its next and last fire."""
    return [_out(r) for r in await _schedules(request).all()]


@router.post("", status_code=201, response_model=ScheduleOut)
async def create_schedule(body: ScheduleIn, request: Request, _admin: Admin) -> ScheduleOut:
    """A new schedule; 409 when the name is taken. It fires from now on."""
    values = _checked(request, body.model_dump())
    row = await _schedules(request).create(values)
    if row is None:
        raise ApiError(409, "schedule_exists", f"a schedule named {body.name!r} exists")
    return _out(row)


@router.get("/{name}", response_model=ScheduleOut)
async def get_schedule(name: Name, request: Request, _admin: Admin) -> ScheduleOut:
    return _out(await _get(_schedules(request), name))


@router.patch("/{name}", response_model=ScheduleOut)
async def update_schedule(
    name: Name, body: SchedulePatch, request: Request, _admin: Admin
) -> ScheduleOut:
    """Change the fields sent. A new cron or timezone, or a re-enable, restarts the
    schedule's clock: nothing from before the change is caught up."""
    changed = body.model_dump(exclude_unset=True)
    # checked under the row's lock, against the row as it is: a refusal changes nothing
    row = await _schedules(request).update(
        name, lambda current: _checked(request, {**current, **changed})
    )
    if row is None:
        raise _not_found(name)
    return _out(row)


@router.delete("/{name}", status_code=204, response_class=Response)
async def delete_schedule(name: Name, request: Request, _admin: Admin) -> Response:
    if not await _schedules(request).delete(name):
        raise _not_found(name)
    return Response(status_code=204)


@router.post("/{name}/trigger", status_code=201, response_model=JobOut)
async def trigger_schedule(name: Name, request: Request, _admin: Admin) -> JobOut:
    """Enqueue the schedule's job now, outside its timing, with its own idempotency key
    (`trigger:<name>:<request time>`); its fire times are unchanged."""
    store = _store(request)
    s = schedules.Schedule.from_row(await _get(_schedules(request), name))
    key = schedules.trigger_key(s.name, datetime.now(UTC))
    job, _ = await store.submit(s.job(key))
    await schedules.follow_up(store, s, key, job.id)
    return JobOut.of(job)
