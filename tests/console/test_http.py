"""The console's security over plain HTTP: cookies, CSRF, headers, sign-out, refusals, SSO claims."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from aerodrome.audit import trail
from aerodrome.config import OIDCConfig, RetentionConfig
from aerodrome.errors import Forbidden
from aerodrome.identity.sso import user_config
from aerodrome.monitoring.retention import purge
from aerodrome.storage.tables import review_items
from tests.console.site import csrf_of, login_http
from tests.harness import Gateway
from tests.upstream.fixtures import UpstreamServer


def test_login_sets_a_httponly_samesite_cookie_and_logout_ends_the_session(site: Gateway) -> None:
    client = login_http(site, "emma@example.com")
    cookie = next(c for c in client.cookies.jar if c.name == "aerodrome_session")
    assert cookie.path == "/console" and not cookie.secure  # plain HTTP: not Secure
    raw = client.get("/console/login")  # a fresh login form sets its CSRF cookie the same way
    set_cookie = raw.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=lax" in set_cookie
    page = client.get("/console/assistant")
    assert page.status_code == 200 and "emma@example.com" in page.text
    token = cookie.value
    r = client.post("/console/logout", data={"csrf_token": csrf_of(page.text)})
    assert r.status_code == 303 and r.headers["location"] == "/console/login"
    # the old cookie is worthless now, even if someone kept it
    with site.client(follow_redirects=False) as other:
        other.cookies.set("aerodrome_session", token, path="/console")
        r = other.get("/console/assistant")
        assert r.status_code == 303 and r.headers["location"].startswith("/console/login?next=")
    actions = [e["action"] for e in trail.list_events(site.runtime.engine)["data"]]
    assert "console.login" in actions and "console.logout" in actions
    client.close()


def test_cookies_are_secure_behind_tls(site: Gateway) -> None:
    with site.client(follow_redirects=False) as c:
        r = c.get("/console/login", headers={"x-forwarded-proto": "https"})
        assert "secure" in r.headers["set-cookie"].lower()


def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(site: Gateway) -> None:
    with site.client(follow_redirects=False) as c:
        answers = []
        for email, password in (("emma@example.com", "not her password"), ("nobody@example.com", "whatever")):
            token = csrf_of(c.get("/console/login").text)
            r = c.post("/console/login", data={"email": email, "password": password, "csrf_token": token})
            answers.append((r.status_code, "wrong email or password" in r.text))
        assert answers == [(401, True), (401, True)]
        assert "aerodrome_session" not in c.cookies


def test_the_login_form_needs_its_csrf_token(site: Gateway) -> None:
    with site.client(follow_redirects=False) as c:
        c.get("/console/login")
        r = c.post(
            "/console/login", data={"email": "emma@example.com", "password": "correct horse battery staple"}
        )
        assert r.status_code == 403 and "csrf_failed" in r.text


def test_login_redirects_only_inside_the_console(site: Gateway) -> None:
    with site.client(follow_redirects=False) as c:
        token = csrf_of(c.get("/console/login").text)
        r = c.post(
            "/console/login",
            data={
                "email": "emma@example.com",
                "password": "correct horse battery staple",
                "csrf_token": token,
                "next": "https://evil.example.com/",
            },
        )
        assert r.status_code == 303 and r.headers["location"] == "/console/assistant"


def test_console_pages_get_their_own_csp_and_the_api_keeps_none(site: Gateway) -> None:
    client = login_http(site, "emma@example.com")
    page = client.get("/console/assistant")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store"
    with site.client() as api:
        assert "'self'" not in api.get("/healthz").headers["content-security-policy"]
    client.close()


def test_the_evidence_report_page_allows_only_its_own_style(site: Gateway) -> None:
    client = login_http(site, "alex@example.com")
    r = client.get("/console/usecases/hr-policy/report")
    assert r.status_code == 200 and "Pilot report" in r.text
    assert "style-src 'self' 'sha256-" in r.headers["content-security-policy"]
    assert "unsafe-inline" not in r.headers["content-security-policy"]
    client.close()


def test_a_session_does_not_open_the_api(site: Gateway) -> None:
    """The management API takes API keys only: a console cookie is no credential there."""
    client = login_http(site, "emma@example.com")
    cookie = client.cookies.get("aerodrome_session")
    with site.client() as c:
        r = c.get("/api/runs", headers={"cookie": f"aerodrome_session={cookie}"})
    assert r.status_code == 401
    client.close()


def test_a_decision_needs_an_approver_and_its_rationale(site: Gateway) -> None:
    emma = login_http(site, "emma@example.com")
    page = emma.get("/console/usecases/hr-policy")
    assert page.status_code == 200 and "Record the decision" not in page.text
    r = emma.post(
        "/console/usecases/hr-policy/transition",
        data={"csrf_token": csrf_of(page.text), "decision": "stop", "rationale": "not useful to us"},
    )
    assert r.status_code == 403 and "usecases decide" in r.text
    alex = login_http(site, "alex@example.com")
    page = alex.get("/console/usecases/hr-policy")
    assert "Record the decision" in page.text
    r = alex.post(
        "/console/usecases/hr-policy/transition",
        data={"csrf_token": csrf_of(page.text), "decision": "stop", "rationale": "short"},
    )
    assert r.status_code == 400 and "rationale" in r.text
    r = alex.post(
        "/console/usecases/hr-policy/transition",
        data={
            "csrf_token": csrf_of(page.text),
            "decision": "stop",
            "rationale": "HR answers this by email already",
        },
    )
    assert r.status_code == 303
    page = alex.get(r.headers["location"])
    assert "stage <strong>retired</strong>" in page.text and "HR answers this by email already" in page.text
    emma.close()
    alex.close()


def test_the_use_case_evidence_loads_after_its_page(site: Gateway) -> None:
    client = login_http(site, "alex@example.com")
    page = client.get("/console/usecases/hr-policy")
    assert 'hx-get="/console/usecases/hr-policy/evidence"' in page.text
    assert "useful_rate ≥ 0.8" in page.text  # the spec's criteria at once, their verdicts after
    fragment = client.get("/console/usecases/hr-policy/evidence", headers={"hx-request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert "Recommendation" in fragment.text and "Next gate" in fragment.text
    assert "No pilot has started" in fragment.text and "(provisional)" in fragment.text
    # the report's Evaluation section and its eval_pass_rate metric (issue 6) are on the page too
    assert "<h3>Evaluation</h3>" in fragment.text and "No eval run of this use case yet" in fragment.text
    assert "eval_pass_rate" in fragment.text
    full = client.get("/console/usecases/hr-policy/evidence")
    assert "<html" in full.text and "Recommendation" in full.text
    client.close()


def test_invalid_inputs_are_shown_on_the_page(site: Gateway) -> None:
    client = login_http(site, "emma@example.com")
    page = client.get("/console/assistant/hr-policy")
    r = client.post(
        "/console/assistant/hr-policy", data={"csrf_token": csrf_of(page.text), "in_question": ""}
    )
    assert r.status_code == 200  # the page streams; the error is in it
    assert "question" in r.text and "(HTTP 422)" in r.text
    r = client.get("/console/assistant/not-a-use-case")
    assert r.status_code == 404
    client.close()


OIDC = OIDCConfig(
    discovery_url="https://idp.example.com/.well-known/openid-configuration",
    client_id="console",
    client_secret="env:OIDC_SECRET",
    group_departments={"HR": "hr", "Finance": "finance"},
    group_roles={"HR-Reviewers": ["reviewer"], "Auditors": ["auditor"]},
    department_claim="department",
)


def test_sso_claims_map_to_a_department_and_roles() -> None:
    known = {"hr", "finance", "platform"}
    user = user_config(OIDC, {"email": "a@example.com", "groups": ["HR", "HR-Reviewers"]}, known)
    assert (user.department, user.roles) == ("hr", ["reviewer", "user"])
    direct = user_config(OIDC, {"email": "b@example.com", "department": "platform", "groups": ["HR"]}, known)
    assert direct.department == "platform"  # the department claim comes first
    with pytest.raises(Forbidden, match="no department maps"):
        user_config(OIDC, {"email": "c@example.com", "groups": ["Sales"]}, known)
    with pytest.raises(Forbidden, match="no email"):
        user_config(OIDC, {"sub": "d", "groups": ["HR"]}, known)
    with pytest.raises(Forbidden, match="not verified"):
        user_config(OIDC, {"email": "e@example.com", "email_verified": False, "groups": ["HR"]}, known)


def test_the_oidc_client_secret_must_be_a_reference() -> None:
    with pytest.raises(ValueError, match="secret reference"):
        OIDCConfig(
            discovery_url="https://x/.well-known/openid-configuration", client_id="c", client_secret="s3cret"
        )


def test_every_console_page_asks_the_permission_table_as_the_api_does(site: Gateway) -> None:
    """Each role, each page of the navigation: shown and served exactly when the table allows it."""
    from aerodrome.console.web import NAV
    from aerodrome.identity import permissions as perm
    from aerodrome.identity.principal import Principal
    from tests.console.site import USERS

    people = [{"email": "admin@example.com", "department": "platform", "roles": ["platform_admin"]}, *USERS]
    for person in people:
        principal = Principal(
            name=person["email"], department_id=person["department"], roles=frozenset(person["roles"])
        )
        client = login_http(site, person["email"])
        home = client.get("/console/assistant")
        for label, path, action in NAV:
            allowed = perm.scope_for(principal, action) is not None
            status = client.get(path).status_code
            assert status == (200 if allowed else 403), (person["email"], path, status)
            assert (f'href="{path}"' in home.text) == allowed, (person["email"], label)
        client.close()


def test_a_review_cleared_by_retention_says_so(site: Gateway) -> None:
    """Retention clears a decided review's draft and answer; its page says so instead of an empty draft."""
    engine = site.runtime.engine
    created = datetime.now(UTC) - timedelta(days=40)
    with engine.begin() as conn:
        conn.execute(
            review_items.insert(),
            {
                "id": "rv-retained",
                "run_id": "run-retained",
                "usecase_id": "letters",
                "spec_version": 1,
                "department_id": "hr",
                "requester": "emma@example.com",
                "reasons": ["always"],
                "status": "approved",
                "draft": {"output": "Dear Jane, your salary is 50k", "inputs": {"topic": "salary of Jane"}},
                "final": "Dear Jane, your salary is 50k",
                "decided_by": "rita@example.com",
                "decided_at": created,
                "note": "fine",
                "created_at": created,
            },
        )
    rita = login_http(site, "rita@example.com")
    before = rita.get("/console/reviews/rv-retained")
    assert before.status_code == 200 and "your salary is 50k" in before.text
    purge(engine, RetentionConfig(content_days=30))
    after = rita.get("/console/reviews/rv-retained")
    assert after.status_code == 200
    assert "your salary is 50k" not in after.text and "salary of Jane" not in after.text
    assert "cleared by the retention policy" in after.text and "<strong>approved</strong>" in after.text
    rita.close()


def _post_fragile(site: Gateway) -> None:
    spec = {
        "id": "fragile",
        "title": "Fragile answers",
        "departments": ["hr"],
        "risk_tier": "low",
        "inputs": {"question": {"type": "string", "required": True, "max_length": 500}},
        "prompt": "{{ question }}",
        "model": "chat-small",
    }
    with site.client(site.admin_key) as c:
        assert c.post("/api/usecases", json={"spec": spec}).status_code == 201


def test_an_answer_cut_short_by_the_model_keeps_its_text_and_shows_the_error(
    site: Gateway, upstream: UpstreamServer
) -> None:
    _post_fragile(site)
    client = login_http(site, "emma@example.com")
    page = client.get("/console/assistant/fragile")
    upstream.fault(reset_after=4)  # the role chunk, "Echo:", " one", " two", then the connection drops
    r = client.post(
        "/console/assistant/fragile",
        data={"csrf_token": csrf_of(page.text), "in_question": "one two three four five six"},
    )
    assert r.status_code == 200
    answer = r.text.split('id="answer"', 1)[1].split("</div>", 1)[0]
    assert "Echo: one two" in answer and "three" not in answer
    alert = r.text.split('role="alert"', 1)[1].split("</p>", 1)[0]
    assert "The answer stopped before it was complete" in alert
    assert "(HTTP 502)" in r.text  # the error's code and status under it
    assert 'class="feedback' in r.text  # the partial answer can still be rated
    run_id = r.text.split("Run <code>", 1)[1].split("</code>", 1)[0]
    runs = [x for x in site.runs() if x["id"] == run_id]
    assert len(runs) == 1 and runs[0]["status"] == "error" and runs[0]["output"] == {"text": "Echo: one two"}
    client.close()


def test_leaving_the_page_while_the_answer_streams_closes_the_upstream_and_records_the_run(
    site: Gateway, upstream: UpstreamServer
) -> None:
    _post_fragile(site)
    client = login_http(site, "emma@example.com")
    page = client.get("/console/assistant/fragile")
    upstream.fault(slow_stream_s=0.3)
    data = {"csrf_token": csrf_of(page.text), "in_question": "one two three four five six seven eight"}
    seen = ""
    with client.stream("POST", "/console/assistant/fragile", data=data) as r:
        for piece in r.iter_text():
            seen += piece
            if "Echo:" in seen:
                break
    assert upstream.wait_for(lambda s: s["streams_cancelled"] >= 1, timeout=5), upstream.stats()
    assert upstream.stats()["streams_completed"] == 0
    deadline = time.monotonic() + 5
    runs: list[dict[str, object]] = []
    while time.monotonic() < deadline and not runs:
        runs = [x for x in site.runs() if x["use_case_id"] == "fragile"]
        time.sleep(0.05)
    assert len(runs) == 1 and runs[0]["status"] == "client_disconnected", runs
    client.close()
