"""Signing in and out: local passwords (argon2) and single sign-on (OIDC)."""

from __future__ import annotations

import asyncio
import hmac

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from aerodrome.console import oidc
from aerodrome.console.web import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    form,
    new_login_csrf,
    read_form,
    render,
    runtime,
    session,
    set_cookie,
)
from aerodrome.errors import AerodromeError, Forbidden
from aerodrome.identity.passwords import check_login
from aerodrome.identity.sessions import Session, close_session, open_session

router = APIRouter(prefix="/console", include_in_schema=False)


def _next(value: str | None) -> str:
    """Only a console path: never an open redirect."""
    if value and value.startswith("/console") and not value.startswith("//") and "\\" not in value:
        return value
    return "/console/assistant"


def _login_page(
    request: Request, *, error: str | None = None, status: int = 200, email: str = ""
) -> Response:
    token = new_login_csrf()
    rt = runtime(request)
    response = render(
        request,
        "login.html",
        {
            "login_csrf": token,
            "error": error,
            "email": email,
            "next": _next(request.query_params.get("next")),
            "sso": rt.config.console.oidc,
        },
        status=status,
    )
    set_cookie(response, request, LOGIN_CSRF_COOKIE, token, 3600)
    return response


@router.get("/login")
async def login_page(request: Request) -> Response:
    return _login_page(request)


def signed_in(request: Request, sess: Session, target: str) -> Response:
    response = RedirectResponse(_next(target), status_code=303)
    hours = runtime(request).config.console.session_hours
    set_cookie(response, request, SESSION_COOKIE, sess.token, int(hours * 3600))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/console")
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    fields = await read_form(request)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    given = fields.get("csrf_token", "")
    if not cookie or not given or not hmac.compare_digest(cookie, given):
        raise Forbidden(
            "the login form expired or was not sent from this site; try again", code="csrf_failed"
        )
    rt = runtime(request)
    email = fields.get("email", "").strip()
    try:
        user = await asyncio.to_thread(check_login, rt.engine, email, fields.get("password", ""))
    except AerodromeError as exc:
        return _login_page(request, error=exc.message, status=exc.status, email=email)
    sess = await asyncio.to_thread(
        open_session, rt.engine, user, method="password", hours=rt.config.console.session_hours
    )
    return signed_in(request, sess, fields.get("next", ""))


@router.post("/logout")
async def logout(request: Request, sess: Session = Depends(session)) -> Response:
    await form(request, sess)
    await asyncio.to_thread(close_session, runtime(request).engine, sess)
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/console")
    return response


@router.get("/login/sso")
async def sso_start(request: Request) -> Response:
    return await oidc.start(request)


@router.get("/login/sso/callback")
async def sso_callback(request: Request) -> Response:
    user, target = await oidc.finish(request)
    rt = runtime(request)
    sess = await asyncio.to_thread(
        open_session, rt.engine, user, method="oidc", hours=rt.config.console.session_hours
    )
    response = signed_in(request, sess, target)
    response.delete_cookie(oidc.STATE_COOKIE, path="/console")
    return response
