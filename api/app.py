"""The FastAPI application: `create_app(database_url)`; `conveyor api` serves it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from api import dashboard, docs, errors, jobs, keys_api, ops, research, schedules, stats
from api.auth import Authenticator
from api.headers import StandardHeaders
from api.quotas import QuotaBook
from api.routing import GuardedRoute
from api.schemas import (
    ONE_START_TIME,
    document_kinds,
)
from api.settings import ApiSettings, JwtSettings
from api.stream import (
    JobWatch,
)
from api.tokens import TokenVerifier
from compute.specs import SPECS
from jobs.app import AppError, load_app
from jobs.db import START_HINT, until_available
from jobs.settings import DatabaseSettings
from jobs.store import Store
from stores.keys import KEYS_CHANNEL, KeyStore
from stores.quotas import QuotaStore
from stores.research import ResearchStore
from stores.schedules import ScheduleStore


def create_app(
    database_url: str,
    settings: ApiSettings | None = None,
    jwt: JwtSettings | None = None,
    kinds: Mapping[str, type[BaseModel]] | None = None,
) -> FastAPI:
    """The API for the built-in kinds and `kinds` (the payload models of the user's app)."""
    settings = settings or ApiSettings()
    jwt = jwt or JwtSettings()
    specs = dict(SPECS)
    for name in kinds or {}:
        if name in specs:
            raise AppError(f"kind {name!r} is one of Conveyor's own; rename it in the app")
    specs.update(kinds or {})
    tokens = TokenVerifier(jwt) if jwt.enabled else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = DatabaseSettings()
        # Started before its database, the API waits for it (and is not ready until then).
        app.state.store = store = await until_available(
            # Submits arrive together: up to half the pool inserts with plans kept.
            lambda: Store.connect(database_url, db=db, inserters=max(1, db.db_pool_max // 2)),
            "api.database_unavailable",
            at="start",
            hint=START_HINT,
        )
        app.state.keys = KeyStore(store.db)
        app.state.quotas = QuotaBook.over(QuotaStore(store.db))
        app.state.schedules = ScheduleStore(store.db)
        app.state.research = ResearchStore(store.db)
        app.state.stream_secret = (
            settings.stream_secret.encode()
            if settings.stream_secret
            else await until_available(
                app.state.keys.stream_secret, "api.database_unavailable", at="start"
            )
        )
        app.state.auth = Authenticator(app.state.keys, tokens, settings.key_cache_s)
        app.state.watch = JobWatch(db.session_url(database_url))
        app.state.watch.also(KEYS_CHANNEL, app.state.auth.forget)  # a revoked key, at once
        await app.state.watch.start()
        try:
            yield
        finally:
            await app.state.watch.stop()
            await app.state.store.close()

    app = FastAPI(
        title="Conveyor",
        version="0.1.0",
        description="Postgres-native background jobs: submit, follow, cancel, retry.",
        lifespan=lifespan,
        docs_url=None,  # api.docs serves /docs from this package, under a CSP
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.specs = specs
    app.router.route_class = GuardedRoute
    errors.install(app)
    app.include_router(schedules.router)
    app.include_router(research.router)
    app.include_router(jobs.router)
    app.include_router(ops.router)
    app.include_router(keys_api.router)
    app.include_router(stats.router)
    app.include_router(dashboard.router)
    app.include_router(docs.router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            document_kinds(schema, specs, "SubmitJob", ONE_START_TIME)
            document_kinds(schema, specs, "ScheduleIn")
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(StandardHeaders)
    if settings.cors_origins:
        # Outermost, so a preflight is answered before anything else looks at it. No
        # credentials mode: the API authenticates with a bearer header, never a cookie.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=False,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID"],
            expose_headers=[
                "Idempotent-Replayed",
                "Unique-Existing",
                "Debounced",
                "Location",
                "Retry-After",
            ],
            max_age=600,
        )

    return app


def from_environment() -> FastAPI:
    """The app as `conveyor api` serves it: everything from the environment."""
    url = DatabaseSettings().database_url
    if not url:
        raise RuntimeError("DATABASE_URL is not set")
    settings = ApiSettings()
    kinds = load_app(settings.app).payloads if settings.app else None
    return create_app(url, settings, JwtSettings(), kinds)
