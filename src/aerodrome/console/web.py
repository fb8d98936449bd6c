"""What every console page shares: templates, the signed-in session, CSRF checks, HTML errors.

A page asks :mod:`aerodrome.identity.permissions` exactly as the API does; the session
gives the same :class:`~aerodrome.identity.principal.Principal` an API key of the user would.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from aerodrome.errors import AerodromeError, BadRequest, Forbidden
from aerodrome.identity import permissions as perm
from aerodrome.identity.sessions import Session, find_session
from aerodrome.runtime import Runtime

SESSION_COOKIE = "aerodrome_session"
LOGIN_CSRF_COOKIE = "aerodrome_login_csrf"
HERE = Path(__file__).parent

# Self-hosted scripts, styles and images only; no inline script or style, no framing.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)

# Navigation: (label, path, the action that shows it).
NAV: tuple[tuple[str, str, str], ...] = (
    ("Assistant", "/console/assistant", "usecases.read"),
    ("Portfolio", "/console/usecases", "usecases.read"),
    ("Dashboards", "/console/dashboards", "runs.read"),
    ("Review", "/console/reviews", "reviews.read"),
    ("Knowledge", "/console/knowledge", "collections.read"),
    ("Models", "/console/models", "catalog.read"),
    ("API keys", "/console/keys", "keys.read"),
    ("Audit", "/console/audit", "audit.read"),
)


class LoginRequired(AerodromeError):
    """No live console session: the page answers with a redirect to the login page."""

    status = 401
    code = "login_required"


def templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(HERE / "templates")),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = lambda d: d.strftime("%Y-%m-%d %H:%M") if d else ""
    env.filters["g3"] = lambda v: "—" if v is None else f"{v:.3g}"
    return env


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def env_of(request: Request) -> Environment:
    env: Environment = request.app.state.console_templates
    return env


async def session(request: Request) -> Session:
    """The signed-in session of this request (dependency); LoginRequired otherwise."""
    token = request.cookies.get(SESSION_COOKIE, "")
    found = await asyncio.to_thread(find_session, runtime(request).engine, token) if token else None
    if found is None:
        raise LoginRequired("sign in to use the console")
    request.state.console_session = found
    return found


def secure(request: Request) -> bool:
    """Cookies are Secure when configured so, or when the request came over TLS."""
    configured = runtime(request).config.console.secure_cookies
    if configured is not None:
        return configured
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/console",
        httponly=True,
        secure=secure(request),
        samesite="lax",
    )


def render(
    request: Request, name: str, context: dict[str, Any], *, status: int = 200, sess: Session | None = None
) -> HTMLResponse:
    sess = sess or getattr(request.state, "console_session", None)
    page = env_of(request).get_template(name).render(**page_context(request, sess), **context)
    return HTMLResponse(page, status_code=status, headers={"cache-control": "no-store"})


def page_context(request: Request, sess: Session | None) -> dict[str, Any]:
    """What the layout needs: the user, the CSRF token, the navigation the user's roles allow."""
    nav = []
    if sess is not None:
        nav = [(label, path) for label, path, action in NAV if perm.scope_for(sess.principal, action)]
    return {
        "request": request,
        "session": sess,
        "user": sess.user if sess else None,
        "principal": sess.principal if sess else None,
        "csrf": sess.csrf if sess else "",
        "nav": nav,
        "path": request.url.path,
    }


async def form(request: Request, sess: Session) -> dict[str, str]:
    """The posted form fields (urlencoded), after checking the session's CSRF token (403 otherwise)."""
    fields = await read_form(request)
    token = fields.get("csrf_token") or request.headers.get("x-csrf-token", "")
    if not token or not hmac.compare_digest(token, sess.csrf):
        raise Forbidden(
            "the form's CSRF token is missing or wrong; reload the page and try again", code="csrf_failed"
        )
    return fields


async def read_form(request: Request) -> dict[str, str]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if body and ctype != "application/x-www-form-urlencoded":
        raise BadRequest("the console takes application/x-www-form-urlencoded forms", code="invalid_form")
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=500)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"the form cannot be read: {exc}", code="invalid_form") from None
    return {k: v[-1] for k, v in parsed.items()}


async def multi(request: Request) -> dict[str, list[str]]:
    """Every value of every field (the form was read and checked by :func:`form` first)."""
    body = await request.body()
    return parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=500)


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


def error_page(request: Request, exc: AerodromeError) -> Response:
    """An error on a console page: the login page for no session, a readable page otherwise."""
    if isinstance(exc, LoginRequired):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"hx-redirect": "/console/login"})
        return RedirectResponse(f"/console/login?next={quote(target, safe='')}", status_code=303)
    sess = getattr(request.state, "console_session", None)
    return render(request, "error.html", {"error": exc}, status=exc.status, sess=sess)
