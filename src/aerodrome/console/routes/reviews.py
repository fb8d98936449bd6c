"""The review queue: held drafts with their age and reason; claim, approve, edit, reject."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from aerodrome.console.web import form, render, runtime, session
from aerodrome.errors import BadRequest
from aerodrome.identity import permissions as perm
from aerodrome.identity.sessions import Session
from aerodrome.review.decisions import parse_statuses
from aerodrome.review.queue import ReviewFilter

router = APIRouter(prefix="/console/reviews", include_in_schema=False)


def age(seconds: float) -> str:
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


@router.get("")
async def queue(
    request: Request, status: str | None = None, sess: Session = Depends(session)
) -> HTMLResponse:
    scope = perm.require(sess.principal, "reviews.read")
    rt = runtime(request)
    flt = ReviewFilter(statuses=parse_statuses([status] if status else None), limit=200)
    listing = await run_in_threadpool(rt.reviews.list, sess.principal, scope, flt)
    may_decide = perm.scope_for(sess.principal, "reviews.decide") is not None
    for item in listing["data"]:
        item["age"] = age(item["age_s"])
    return render(
        request, "reviews.html", {"listing": listing, "may_decide": may_decide, "status": status or "open"}
    )


@router.get("/{review_id}")
async def item(review_id: str, request: Request, sess: Session = Depends(session)) -> HTMLResponse:
    scope = perm.require(sess.principal, "reviews.read")
    found = await run_in_threadpool(runtime(request).reviews.get, review_id, sess.principal, scope)
    found["age"] = age(found["age_s"])
    output = found["draft"].get("output") if isinstance(found["draft"], dict) else None
    found["draft_text"] = output if isinstance(output, str) else ("" if output is None else str(output))
    may_decide = perm.scope_for(sess.principal, "reviews.decide") is not None
    return render(request, "review.html", {"item": found, "may_decide": may_decide})


@router.post("/{review_id}/{action}")
async def decide(review_id: str, action: str, request: Request, sess: Session = Depends(session)) -> Response:
    """The same domain calls as POST /api/reviews/{id}/claim|approve|edit|reject."""
    fields = await form(request, sess)
    scope = perm.require(sess.principal, "reviews.decide")
    reviews = runtime(request).reviews
    note = fields.get("note", "").strip() or None
    p = sess.principal
    if action == "claim":
        await run_in_threadpool(reviews.claim, review_id, p, scope)
        return RedirectResponse(f"/console/reviews/{review_id}", status_code=303)
    if action == "approve":
        await run_in_threadpool(lambda: reviews.approve(review_id, p, scope, note=note))
    elif action == "edit":
        output = fields.get("output", "")
        if not output.strip():
            raise BadRequest("the edited answer is empty; reject the draft instead", param="output")
        await run_in_threadpool(lambda: reviews.edit(review_id, p, scope, output=output, note=note))
    elif action == "reject":
        if note is None:
            raise BadRequest("say why the draft is rejected (the caller sees it)", param="note")
        await run_in_threadpool(lambda: reviews.reject(review_id, p, scope, note=note))
    else:
        raise BadRequest(f"unknown review action {action!r}", code="invalid_action")
    return RedirectResponse("/console/reviews?done=" + action, status_code=303)
