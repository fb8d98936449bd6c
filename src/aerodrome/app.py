"""create_app(settings): routers, middleware, lifespan. No logic here."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from aerodrome import __version__
from aerodrome.config import PlatformConfig, load_config
from aerodrome.console.mount import install as install_console
from aerodrome.console.web import CSP
from aerodrome.console.web import error_page as console_error_page
from aerodrome.errors import AerodromeError, BadRequest, NotFound, PayloadTooLarge
from aerodrome.runtime import Runtime, open_database
from aerodrome.settings import Settings

log = logging.getLogger("aerodrome")

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
CONSOLE_PREFIX = "/console"
CONSOLE_CSP = (b"content-security-policy", CSP.encode())


class SecurityHeaders:
    """Pure ASGI middleware (no per-request objects): adds security headers to every answer.

    The API gets ``default-src 'none'``; console pages get the console's policy (self-hosted
    scripts and styles only), unless the page set its own (the evidence report's style hash).
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        console = scope["path"].startswith(CONSOLE_PREFIX)

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if not any(name.lower() == b"content-security-policy" for name, _ in headers):
                    headers.append(CONSOLE_CSP if console else API_CSP)
                if console:
                    headers.append((b"cross-origin-opener-policy", b"same-origin"))
                message["headers"] = [*headers, *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes on the management API (413), declared or streamed.

    The gateway routes read their bodies themselves with the same limit (and record a run), so
    they are left alone here.
    """

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in GATEWAY_PATHS:
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await _error_response(PayloadTooLarge(self._message(int(value))))(scope, receive, send)
                return
        # Management bodies are small: read the whole body first, refuse it past the limit, replay it.
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body = message.get("body", b"")
            seen += len(body)
            if seen > self.limit:
                await _error_response(PayloadTooLarge(self._message(seen)))(scope, receive, send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _message(self, size: int) -> str:
        return f"the request body is {size}+ bytes; the limit is {self.limit} bytes"


GATEWAY_PATHS = frozenset({"/v1/chat/completions", "/v1/embeddings"})


def _error_response(exc: AerodromeError) -> Response:
    return Response(
        orjson.dumps(exc.to_dict()),
        status_code=exc.status,
        media_type="application/json",
        headers=exc.headers,
    )


def create_app(settings: Settings | None = None, config: PlatformConfig | None = None) -> FastAPI:
    settings = settings or Settings()
    config = config or load_config(settings.config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = open_database(config, settings.database_url)
        runtime = await Runtime.start(config, engine)
        app.state.runtime = runtime
        log.info("aerodrome ready", extra={"version": __version__, "database": engine.url.render_as_string()})
        try:
            yield
        finally:
            await runtime.stop()
            engine.dispose()

    app = FastAPI(
        title="Aerodrome",
        version=__version__,
        summary="Governed OpenAI-compatible gateway and platform API",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI would load scripts from a CDN; the console (issue 7) serves docs offline
        redoc_url=None,
    )
    app.state.settings = settings  # process settings handlers may need (e.g. the red-team data folder)

    @app.exception_handler(AerodromeError)
    async def _aerodrome_error(request: Request, exc: AerodromeError) -> Response:
        if request.url.path.startswith(CONSOLE_PREFIX + "/"):
            return console_error_page(request, exc)
        return _error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        loc = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = (
            f"{loc}: {first.get('msg', 'invalid request')}"
            if loc
            else str(first.get("msg", "invalid request"))
        )
        return _error_response(BadRequest(message, param=loc or None, code="invalid_request"))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return _error_response(NotFound("no such endpoint", code="unknown_endpoint"))
        err = AerodromeError(str(exc.detail), code=f"http_{exc.status_code}")
        err.status = exc.status_code
        return _error_response(err)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", extra={"path": request.url.path})
        return _error_response(AerodromeError("internal error; the platform team can find it in the logs"))

    from aerodrome.api import (
        alerts,
        catalog,
        evals,
        evidence,
        feedback,
        guardrails,
        identity,
        jobs,
        knowledge,
        redteam,
        reviews,
        run_outcome,
        runs,
        usecases,
    )
    from aerodrome.gateway import routes as gateway_routes
    from aerodrome.monitoring import routes as monitoring_routes

    app.include_router(gateway_routes.router)
    app.include_router(identity.router)
    app.include_router(catalog.router)
    app.include_router(runs.router)
    app.include_router(knowledge.router)
    app.include_router(jobs.router)
    app.include_router(guardrails.router)
    app.include_router(reviews.router)
    app.include_router(feedback.router)
    app.include_router(run_outcome.router)
    app.include_router(usecases.router)
    app.include_router(evidence.router)
    app.include_router(evals.router)
    app.include_router(redteam.router)
    app.include_router(monitoring_routes.router)
    app.include_router(alerts.router)
    if config.console.enabled:
        install_console(app)
    app.add_middleware(BodyLimit, limit=config.server.max_body_bytes)
    app.add_middleware(SecurityHeaders)
    return app


def app_from_env() -> FastAPI:
    """Uvicorn factory for ``--workers N`` (each worker builds its app from the environment)."""
    from aerodrome.monitoring.logs import configure

    settings = Settings()
    configure(settings.log_level, json=settings.log_json)
    return create_app(settings)
