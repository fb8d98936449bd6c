"""Put the console on an app: its routers, its static files, its templates."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from aerodrome.console.routes import admin, assistant, auth, dashboards, portfolio, reviews
from aerodrome.console.web import HERE, templates


def install(app: FastAPI) -> None:
    app.state.console_templates = templates()
    app.mount("/console/static", StaticFiles(directory=str(HERE / "static")), name="console-static")

    @app.get("/console", include_in_schema=False)
    async def _home() -> RedirectResponse:
        return RedirectResponse("/console/assistant", status_code=303)

    for module in (auth, assistant, reviews, dashboards, portfolio, admin):
        app.include_router(module.router)
