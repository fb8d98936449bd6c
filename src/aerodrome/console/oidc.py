"""OpenID Connect sign-in with Authlib: authorization code flow with PKCE, state and nonce.

The state, nonce and PKCE verifier of a sign-in in progress live in a short-lived HttpOnly
cookie (no server-side state); the ID token's signature, issuer, audience, expiry and nonce
are checked against the provider's published keys before the user is signed in.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import Any

import httpx
import orjson
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth2Client
from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from aerodrome.catalog.secrets import resolve_secret
from aerodrome.config import OIDCConfig
from aerodrome.console.web import runtime, set_cookie
from aerodrome.errors import BadRequest, Forbidden, NotFound, UpstreamError
from aerodrome.identity.sso import sign_in

STATE_COOKIE = "aerodrome_sso"
log = logging.getLogger("aerodrome.console")


def _config(request: Request) -> OIDCConfig:
    oidc = runtime(request).config.console.oidc
    if oidc is None:
        raise NotFound("single sign-on is not configured (console.oidc in aerodrome.yaml)", code="sso_off")
    return oidc


def _redirect_url(request: Request, oidc: OIDCConfig) -> str:
    return oidc.redirect_url or str(request.base_url).rstrip("/") + "/console/login/sso/callback"


async def _get_json(http: httpx.AsyncClient, url: str, what: str) -> dict[str, Any]:
    try:
        r = await http.get(url)
        r.raise_for_status()
        data = r.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise UpstreamError(f"the identity provider's {what} cannot be read ({url}): {exc}") from None
    if not isinstance(data, dict):
        raise UpstreamError(f"the identity provider's {what} is not a JSON object ({url})")
    return data


def _client(request: Request, oidc: OIDCConfig) -> AsyncOAuth2Client:
    rt = runtime(request)
    secret = resolve_secret(oidc.client_secret, base_dir=rt.config.base_dir)
    return AsyncOAuth2Client(
        client_id=oidc.client_id,
        client_secret=secret,
        scope=" ".join(oidc.scopes),
        redirect_uri=_redirect_url(request, oidc),
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_post" if secret else "none",
        timeout=10,
    )


async def start(request: Request) -> Response:
    """Send the browser to the identity provider."""
    oidc = _config(request)
    async with httpx.AsyncClient(timeout=10) as http:
        meta = await _get_json(http, oidc.discovery_url, "discovery document")
    nonce, verifier = generate_token(32), generate_token(48)
    async with _client(request, oidc) as client:
        url, state = client.create_authorization_url(
            meta["authorization_endpoint"], nonce=nonce, code_verifier=verifier
        )
    target = request.query_params.get("next", "")
    response = RedirectResponse(url, status_code=303)
    value = orjson.dumps({"state": state, "nonce": nonce, "verifier": verifier, "next": target}).decode()
    set_cookie(response, request, STATE_COOKIE, value, 600)
    return response


def _pending(request: Request) -> dict[str, str]:
    try:
        pending = orjson.loads(request.cookies.get(STATE_COOKIE, "") or "null")
    except orjson.JSONDecodeError:
        pending = None
    if not isinstance(pending, dict) or not all(isinstance(pending.get(k), str) for k in ("state", "nonce")):
        raise Forbidden("this sign-in was not started here or took too long; sign in again", code="sso_state")
    given = request.query_params.get("state", "")
    if not given or not hmac.compare_digest(given, pending["state"]):
        raise Forbidden(
            "the sign-in answer does not match its request (state); sign in again", code="sso_state"
        )
    return pending


def _claims(
    id_token: str, jwks: dict[str, Any], meta: dict[str, Any], oidc: OIDCConfig, nonce: str
) -> dict[str, Any]:
    try:
        token = jwt.decode(id_token, KeySet.import_key_set(jwks))  # type: ignore[arg-type]
        jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": meta["issuer"]},
            aud={"essential": True, "value": oidc.client_id},
            nonce={"essential": True, "value": nonce},
            exp={"essential": True},
        ).validate(token.claims)
    except (JoseError, ValueError, KeyError) as exc:
        raise Forbidden(
            f"the identity provider's ID token is not valid: {exc}", code="sso_bad_token"
        ) from None
    return dict(token.claims)


async def finish(request: Request) -> tuple[dict[str, Any], str]:
    """The callback: check state, exchange the code, verify the ID token, sign the user in."""
    oidc = _config(request)
    if "error" in request.query_params:
        raise Forbidden(
            f"the identity provider refused the sign-in: {request.query_params.get('error_description') or request.query_params['error']}",
            code="sso_refused",
        )
    pending = _pending(request)
    code = request.query_params.get("code")
    if not code:
        raise BadRequest("the identity provider sent no code", code="sso_no_code")
    async with httpx.AsyncClient(timeout=10) as http:
        meta = await _get_json(http, oidc.discovery_url, "discovery document")
        jwks = await _get_json(http, meta["jwks_uri"], "signing keys")
    async with _client(request, oidc) as client:
        try:
            token = await client.fetch_token(
                meta["token_endpoint"], code=code, code_verifier=pending.get("verifier")
            )
        except Exception as exc:  # boundary: Authlib raises several kinds; the user gets one clear error
            log.warning("OIDC token exchange failed", extra={"error": str(exc)})
            raise UpstreamError(f"the identity provider did not give a token: {exc}") from None
        if "id_token" not in token:
            raise Forbidden(
                "the identity provider sent no ID token (is 'openid' a scope?)", code="sso_bad_token"
            )
        claims = _claims(token["id_token"], jwks, meta, oidc, pending["nonce"])
        if meta.get("userinfo_endpoint") and (oidc.groups_claim not in claims or "email" not in claims):
            try:
                r = await client.get(meta["userinfo_endpoint"])
                r.raise_for_status()
                info = r.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise UpstreamError(f"the identity provider's userinfo cannot be read: {exc}") from None
            if isinstance(info, dict) and info.get("sub") == claims.get("sub"):
                claims = {**info, **claims}
    user = await asyncio.to_thread(sign_in, runtime(request).engine, oidc, claims)
    return user, pending.get("next", "")
