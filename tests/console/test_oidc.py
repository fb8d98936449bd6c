"""Single sign-on against a real OpenID Connect provider (oidc-provider, started by the test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aerodrome.audit import trail
from aerodrome.identity import store
from tests.console.idp import CLIENT_ID, node_missing, provider
from tests.console.site import SCREENSHOTS, console_site
from tests.harness import Gateway, free_port
from tests.upstream.fixtures import UpstreamServer

pytestmark = pytest.mark.timeout(600)  # the first run on a fresh machine installs oidc-provider (npm ci)


@pytest.fixture
def sso(upstream: UpstreamServer, tmp_path: Path) -> Iterator[tuple[Gateway, str]]:
    missing = node_missing()
    if missing:
        pytest.skip(missing)
    port = free_port()
    (tmp_path / "oidc-secret").write_text("a-client-secret-for-the-test\n", encoding="utf-8")
    oidc = {
        "discovery_url": f"http://127.0.0.1:{port}/.well-known/openid-configuration",
        "client_id": CLIENT_ID,
        "client_secret": "file:oidc-secret",
        "scopes": ["openid", "email", "profile", "groups"],
        "label": "Sign in with Example SSO",
        "group_departments": {"hr-staff": "hr"},
        "group_roles": {"hr-reviewers": ["reviewer"]},
    }
    with console_site(upstream.url, tmp_path, console={"oidc": oidc}) as gw:
        callback = gw.url + "/console/login/sso/callback"
        with provider(port, callback, "a-client-secret-for-the-test") as issuer:
            yield gw, issuer


def _sign_in_at_provider(page: Any, login: str) -> None:
    page.get_by_role("link", name="Sign in with Example SSO").click()
    page.wait_for_url("**/interaction/**")
    page.locator("input[name=login]").fill(login)
    page.locator("input[name=password]").fill("anything")
    page.locator("button[type=submit]").click()
    page.locator("button[type=submit]", has_text="Continue").click()  # consent


def test_a_new_user_signs_in_through_the_identity_provider(sso: tuple[Gateway, str], browser: Any) -> None:
    gw, _ = sso
    assert store.user_by_email(gw.runtime.engine, "dana@example.com") is None
    context = browser.new_context()
    page = context.new_page()
    page.goto(gw.url + "/console/reviews")
    _sign_in_at_provider(page, "dana")
    page.wait_for_url("**/console/reviews")  # back where she started, signed in
    assert page.get_by_text("dana@example.com").is_visible()
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "sso-signed-in.png"), full_page=True)
    user = store.user_by_email(gw.runtime.engine, "dana@example.com")
    assert user is not None and user["department_id"] == "hr"
    assert sorted(user["roles"]) == ["reviewer", "user"]  # default role plus her group's
    events = trail.list_events(gw.runtime.engine, trail.AuditFilter(action="console.login"))["data"]
    assert events[0]["actor"] == "dana@example.com" and events[0]["details"] == {"method": "oidc"}
    # a reviewer's pages, nothing more
    assert page.goto(gw.url + "/console/audit").status == 403
    context.close()


def test_a_user_whose_groups_map_to_no_department_is_refused(sso: tuple[Gateway, str], browser: Any) -> None:
    gw, _ = sso
    context = browser.new_context()
    page = context.new_page()
    page.goto(gw.url + "/console/login")
    _sign_in_at_provider(page, "sam")
    page.get_by_role("heading", name="Not permitted").wait_for()
    assert "no department maps to your groups ['unmapped']" in page.get_by_role("alert").inner_text()
    assert store.user_by_email(gw.runtime.engine, "sam@example.com") is None
    context.close()


def test_a_callback_with_a_forged_state_is_refused(sso: tuple[Gateway, str]) -> None:
    gw, _ = sso
    with gw.client() as c:
        r = c.get("/console/login/sso/callback", params={"code": "x", "state": "forged"})
    assert r.status_code == 403 and "sign in again" in r.text
