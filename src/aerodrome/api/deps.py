"""Shared pieces of the management API: the caller and the runtime."""

from __future__ import annotations

from fastapi import Request

from aerodrome.identity.principal import Principal
from aerodrome.runtime import Runtime


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


async def principal(request: Request) -> Principal:
    rt: Runtime = request.app.state.runtime
    return await rt.authenticator.authenticate(request.headers.get("authorization"))
