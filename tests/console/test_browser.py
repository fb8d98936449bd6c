"""The console in a real browser (Playwright driving Debian's Chromium) against a live server."""

from __future__ import annotations

from typing import Any

import pytest

from aerodrome.feedback.store import FLAGS
from tests.console.site import DESKTOP, PASSWORD, PHONE, SCREENSHOTS
from tests.harness import Gateway
from tests.upstream.fixtures import UpstreamServer


def sign_in(browser: Any, gw: Gateway, email: str, *, viewport: dict[str, int] = DESKTOP) -> Any:
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.goto(gw.url + "/console")
    assert "/console/login" in page.url  # no session: the login page
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/console/assistant")
    return page


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_an_employee_asks_rates_and_a_reviewer_releases_a_held_answer(site: Gateway, browser: Any) -> None:
    emma = sign_in(browser, site, "emma@example.com")
    assert emma.get_by_text("emma@example.com").is_visible()
    emma.get_by_role("link", name="HR policy questions").click()
    emma.get_by_label("question").fill("How many weeks of parental leave do birth parents get?")
    emma.get_by_role("button", name="Ask").click()
    answer = emma.locator("#answer")
    answer.wait_for()
    emma.locator("form.feedback").wait_for()
    assert "16 weeks" in answer.inner_text()
    assert emma.get_by_text("AI-assisted").first.is_visible()
    source = emma.locator("ol.citations a").first
    assert source.inner_text() == "Leave policy"
    assert "/console/knowledge/hr-policies" in (source.get_attribute("href") or "")
    shot(emma, "assistant-answer")
    run_id = emma.locator("p.muted code").first.inner_text()

    emma.get_by_role("button", name="Useful (thumbs up)").click()
    emma.get_by_text("your feedback is recorded (up)").wait_for()
    # flags and a correction on the same answer, through the same form
    emma.goto(site.url + f"/console/runs/{run_id}")
    emma.get_by_text("Flag or correct it").click()
    emma.get_by_label("hallucination").check()
    emma.get_by_label("What should the answer have been?").fill("16 weeks at full pay, then 10 at half pay.")
    emma.get_by_role("button", name="Send flags and correction").click()
    emma.get_by_text("with a correction").wait_for()
    with site.client(site.admin_key) as c:
        lines = c.get("/api/feedback/export").text.strip().splitlines()
    assert len(lines) == 2 and '"rating":"up"' in lines[0] and '"hallucination"' in lines[1]
    assert "hallucination" in FLAGS

    # a use case whose answers always wait for a person
    emma.goto(site.url + "/console/assistant/letters")
    emma.get_by_label("topic").fill("How long is parental leave?")
    emma.get_by_label("tone").select_option("friendly")
    emma.get_by_role("button", name="Ask").click()
    emma.get_by_text("This answer waits for a person's review (pending)").wait_for()
    held_run = emma.locator("p.muted code").first.inner_text()

    rita = sign_in(browser, site, "rita@example.com")
    rita.get_by_role("link", name="Review").click()
    row = rita.locator("tbody tr", has_text="letters")
    assert "always" in row.inner_text() and "min" in row.inner_text()  # its reason and its age
    shot(rita, "review-queue")
    row.get_by_role("link", name="Open").click()
    rita.get_by_role("button", name="Claim").click()
    rita.get_by_text("claimed by rita@example.com").wait_for()
    rita.get_by_label("Note (optional)").first.fill("fine as it is")
    rita.get_by_role("button", name="Approve").click()
    rita.get_by_text("Done: approve.").wait_for()

    emma.goto(site.url + f"/console/runs/{held_run}")
    assert emma.get_by_text("Reviewed: approved — fine as it is").is_visible()
    assert "16 weeks" in emma.locator("div.answer").inner_text()
    shot(emma, "run-after-review")

    # both runs appear on the dashboard of someone who reads every department
    site.flush()
    admin = sign_in(browser, site, "admin@example.com")
    admin.get_by_role("link", name="Dashboards").click()
    assert admin.locator("#kpi-runs").inner_text() == "2"
    assert admin.locator("table", has_text="By use case").get_by_text("hr-policy").is_visible()
    assert admin.locator("canvas#chart-adoption").is_visible()
    shot(admin, "dashboards")
    for page in (emma, rita, admin):
        page.context.close()


SLOW_KB = {
    "id": "slow-kb",
    "title": "Policy answers from a slow model",
    "departments": ["hr"],
    "risk_tier": "low",
    "inputs": {"question": {"type": "string", "required": True, "max_length": 500}},
    "prompt": "{{ context }}\nQuestion: {{ question }}",
    "model": "chat-small",
    "retrieval": {"collections": ["hr-policies"], "top_k": 1, "mode": "lexical"},
}


def test_the_answer_shows_while_the_model_is_still_writing_it(
    site: Gateway, browser: Any, upstream: UpstreamServer
) -> None:
    with site.client(site.admin_key) as c:
        assert c.post("/api/usecases", json={"spec": SLOW_KB}).status_code == 201
    emma = sign_in(browser, site, "emma@example.com")
    emma.goto(site.url + "/console/assistant/slow-kb")
    emma.get_by_label("question").fill("How many weeks of parental leave do birth parents get?")
    upstream.fault(slow_stream_s=0.15)  # a word every 0.15 s
    emma.get_by_role("button", name="Ask").click()
    answer = emma.locator("#answer")
    answer.filter(has_text="Echo:").wait_for(timeout=10_000)
    partial = answer.inner_text()
    # part of the answer is on the page while the model is still writing, before the rest of the page
    assert upstream.stats()["streams_completed"] == 0, upstream.stats()
    assert emma.locator("form.feedback").count() == 0
    assert "How many weeks" not in partial  # the end of the echo has not arrived yet
    shot(emma, "assistant-streaming")
    emma.locator("form.feedback").wait_for(timeout=20_000)
    whole = answer.inner_text()
    assert whole.startswith(partial.strip()) and len(whole) > len(partial)
    assert "16 weeks" in whole and whole.strip().endswith(
        "How many weeks of parental leave do birth parents get?"
    )
    assert upstream.stats()["streams_completed"] == 1
    assert emma.locator("ol.citations a").first.inner_text() == "Leave policy"
    assert emma.get_by_text("AI-assisted").first.is_visible()
    emma.context.close()


def test_a_plain_user_is_refused_the_pages_their_role_does_not_allow(site: Gateway, browser: Any) -> None:
    emma = sign_in(browser, site, "emma@example.com")
    nav = emma.get_by_role("navigation", name="Main").inner_text()
    assert "Audit" not in nav and "Review" not in nav and "Assistant" in nav
    for path, action in (("/console/audit", "audit read"), ("/console/reviews", "reviews read")):
        response = emma.goto(site.url + path)
        assert response.status == 403
        assert emma.get_by_role("heading", name="Not permitted").is_visible()
        assert action in emma.get_by_role("alert").inner_text()
    shot(emma, "refused-audit")
    # an approver sees the decision form, a plain user does not even see the use case's department's page of another
    response = emma.goto(site.url + "/console/usecases/hr-policy")
    assert response.status == 200 and emma.get_by_text("Record the decision").count() == 0
    emma.context.close()


def test_a_form_posted_without_its_csrf_token_is_refused(site: Gateway, browser: Any) -> None:
    emma = sign_in(browser, site, "emma@example.com")
    # the browser's own cookies, but no token: refused, nothing recorded
    response = emma.request.post(
        site.url + "/console/keys", form={"name": "sneaky", "department": "hr", "role": "user"}
    )
    assert response.status == 403 and "CSRF" in response.text()
    response = emma.request.post(
        site.url + "/console/keys",
        form={"name": "sneaky", "department": "hr", "role": "user", "csrf_token": "wrong"},
    )
    assert response.status == 403
    with site.client(site.admin_key) as c:
        assert all(k["name"] != "sneaky" for k in c.get("/api/keys").json()["data"])
    # the page's own form carries the token and works; the key is shown once
    emma.goto(site.url + "/console/keys")
    emma.get_by_label("Name (what it is for)").fill("my spreadsheet")
    emma.get_by_role("button", name="Create").click()
    key = emma.get_by_label("The key", exact=True).input_value()
    assert key.startswith("ak_")
    with site.client(key) as c:
        assert c.get("/v1/models").status_code == 200
    emma.goto(site.url + "/console/keys")
    assert key not in emma.content()  # shown once
    emma.get_by_role("button", name="Revoke the key my spreadsheet").click()
    emma.get_by_text("Revoked the key").wait_for()
    emma.context.close()


PAGES = [
    ("login", "/console/login", None),
    ("assistant", "/console/assistant", "emma@example.com"),
    ("assistant-form", "/console/assistant/letters", "emma@example.com"),
    ("portfolio", "/console/usecases", "admin@example.com"),
    ("usecase", "/console/usecases/hr-policy", "alex@example.com"),
    ("report", "/console/usecases/hr-policy/report", "alex@example.com"),
    ("dashboards", "/console/dashboards", "admin@example.com"),
    ("reviews", "/console/reviews", "rita@example.com"),
    ("knowledge", "/console/knowledge", "admin@example.com"),
    ("collection", "/console/knowledge/hr-policies?q=parental+leave", "emma@example.com"),
    ("models", "/console/models", "admin@example.com"),
    ("audit", "/console/audit", "audrey@example.com"),
    ("keys", "/console/keys", "admin@example.com"),
]


@pytest.mark.timeout(300)
def test_every_page_renders_on_a_desktop_and_a_phone(site: Gateway, browser: Any) -> None:
    """A screenshot of each page at both sizes (tests/console/screenshots/); no page scrolls sideways."""
    for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        pages: dict[str, Any] = {}
        for name, path, who in PAGES:
            if who is None:
                context = browser.new_context(viewport=viewport)
                page = context.new_page()
            else:
                if who not in pages:
                    pages[who] = sign_in(browser, site, who, viewport=viewport)
                page = pages[who]
            errors: list[str] = []
            page.on("console", lambda m, errors=errors: errors.append(m.text) if m.type == "error" else None)
            response = page.goto(site.url + path)
            assert response.status == 200, (path, response.status)
            page.wait_for_load_state("networkidle")
            shot(page, f"{name}-{label}")
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            # the evidence report is the report module's own standalone HTML, wide tables included
            assert overflow <= 1 or name == "report", f"{path} scrolls sideways by {overflow}px on a {label}"
            assert not [e for e in errors if "Content Security Policy" in e], errors
            if who is None:
                context.close()
        for page in pages.values():
            page.context.close()
