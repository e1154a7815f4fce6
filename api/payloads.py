"""A job's payload checked against its kind's model (`compute.specs.SPECS` and the kinds of
the user's app, as `create_app` was given them), and whether the caller may submit it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from api import errors
from api.errors import ApiError
from api.keys import Principal
from compute.specs import admin_only


def authorized(kind: str, payload: dict[str, Any], who: Principal) -> None:
    """403 when the job writes shared research and the caller is not an admin."""
    reason = admin_only(kind, payload)
    if reason is not None and not who.is_admin:
        raise ApiError(
            403,
            "admin_only_kind",
            f"only an admin may submit this job: {reason}; ask an operator, or leave it to"
            " the platform's schedules",
        )


def validated_payload(
    kind: str, payload: dict[str, Any], specs: Mapping[str, type[BaseModel]]
) -> dict[str, Any]:
    """The payload as its kind's model reads it; 422 for an unknown kind or a bad field."""
    spec = specs.get(kind)
    if spec is None:
        raise ApiError(
            422,
            "unknown_kind",
            f"no job kind {kind!r}; known kinds: {', '.join(sorted(specs))}",
            {"known_kinds": sorted(specs)},
        )
    try:
        return spec.model_validate(payload).model_dump(mode="json")
    except ValidationError as exc:
        fields = errors.field_errors(exc.errors())
        summary = "; ".join(f"payload.{f['field']}: {f['problem']}" for f in fields)
        raise ApiError(
            422, "invalid_payload", f"the payload is invalid: {summary}", fields
        ) from None
