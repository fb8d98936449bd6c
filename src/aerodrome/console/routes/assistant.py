"""The assistant: pick a use case, fill its inputs, watch the answer arrive, rate it, follow its review."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import escape

from aerodrome.console.web import env_of, form, multi, page_context, render, runtime, session
from aerodrome.errors import AerodromeError, Forbidden
from aerodrome.feedback import store as feedback_store
from aerodrome.gateway.routes import stream_usecase_as
from aerodrome.gateway.streaming import BodyStream
from aerodrome.identity import permissions as perm
from aerodrome.identity.sessions import Session
from aerodrome.monitoring.run_lookup import RunLookup
from aerodrome.review.outcome import run_outcome
from aerodrome.usecases.registry import LiveUseCase
from aerodrome.usecases.spec import InputSpec
from aerodrome.usecases.streaming import Delta, RunEvent

router = APIRouter(prefix="/console", include_in_schema=False)


def usable(request: Request, sess: Session) -> list[LiveUseCase]:
    """The use cases the user may run: live in their department (the runner refuses the others,
    whatever the reading scope)."""
    perm.require(sess.principal, "usecases.read")
    live = runtime(request).usecases.all()
    return [u for u in live if u.load_error is None and sess.principal.department_id in u.spec.departments]


def _usecase(request: Request, sess: Session, usecase_id: str) -> LiveUseCase:
    for u in usable(request, sess):
        if u.id == usecase_id:
            return u
    runtime(request).usecases.get(usecase_id)  # 404 for an unknown id
    raise Forbidden(f"the use case {usecase_id!r} is not live in your department", code="usecase_not_live")


@router.get("/assistant")
async def assistant(request: Request, sess: Session = Depends(session)) -> HTMLResponse:
    return render(request, "assistant.html", {"usecases": usable(request, sess)})


@router.get("/assistant/{usecase_id}")
async def usecase_form(usecase_id: str, request: Request, sess: Session = Depends(session)) -> HTMLResponse:
    live = _usecase(request, sess, usecase_id)
    return render(request, "assistant_form.html", {"live": live, "values": {}})


def _inputs(
    spec_inputs: dict[str, InputSpec], fields: dict[str, str], lists: dict[str, list[str]]
) -> dict[str, Any]:
    """Form fields → the use case's inputs, typed by its schema (the runner validates them, 422)."""
    out: dict[str, Any] = {}
    for name, spec in spec_inputs.items():
        key = f"in_{name}"
        if spec.type == "boolean":
            out[name] = key in fields
            continue
        raw = fields.get(key, "")
        if spec.type == "array":
            items = [line.strip() for v in lists.get(key, []) for line in v.splitlines() if line.strip()]
            if items:
                out[name] = items
            continue
        if raw.strip() == "":
            continue
        if spec.type == "integer":
            try:
                out[name] = int(raw)
            except ValueError:
                out[name] = raw  # the runner says what is wrong
        elif spec.type == "number":
            try:
                out[name] = float(raw)
            except ValueError:
                out[name] = raw
        else:
            out[name] = raw
    return out


@router.post("/assistant/{usecase_id}")
async def run(usecase_id: str, request: Request, sess: Session = Depends(session)) -> Response:
    """Run the use case; the page arrives in pieces: the question at once, then the answer as the
    model writes it (or whole, when the use case checks or reviews it first), then the rest."""
    fields = await form(request, sess)
    live = _usecase(request, sess, usecase_id)
    inputs = _inputs(live.spec.inputs, fields, await multi(request))
    events = stream_usecase_as(request, sess.principal, usecase_id, inputs)
    env = env_of(request)
    context = {**page_context(request, sess), "live": live, "inputs": inputs}
    return BodyStream(
        _page(env, context, events),
        {"cache-control": "no-store"},
        "text/html; charset=utf-8",
    )


async def _page(
    env: Any, context: dict[str, Any], events: AsyncGenerator[RunEvent, None]
) -> AsyncGenerator[bytes, None]:
    """The page: its first half, each escaped piece of the answer as it arrives, the second half
    (sources, review status, rating form; an error that cut the answer short)."""
    yield _half(env, context, 0).encode()
    async with aclosing(events):
        try:
            async for event in events:
                if isinstance(event, Delta):
                    yield str(escape(event.text)).encode()
                    continue
                data = event.outcome.to_dict()
                if not event.streamed:
                    yield str(escape(_answer_text(data))).encode()
                yield _half(env, {**context, "run": data, "error": event.error}, 1).encode()
        except AerodromeError as exc:
            yield _half(env, {**context, "error": exc}, 1).encode()


def _answer_text(data: dict[str, Any]) -> str:
    output = data.get("output")
    if output is None:
        return ""
    return output if isinstance(output, str) else orjson.dumps(output, option=orjson.OPT_INDENT_2).decode()


def _half(env: Any, context: dict[str, Any], index: int) -> str:
    """The page before (0) or after (1) the streamed answer."""
    page = env.get_template("assistant_run.html").render(**context)
    return str(page.split("<!--answer-->", 1)[index])


def _lookup(request: Request) -> RunLookup:
    rt = runtime(request)
    return RunLookup(rt.engine, rt.writer, rt.reviews.for_run)


@router.get("/runs/{run_id}")
async def run_page(run_id: str, request: Request, sess: Session = Depends(session)) -> HTMLResponse:
    """One run for its caller: status, review state and, once released, the output."""
    view = await run_in_threadpool(run_outcome, _lookup(request), sess.principal, run_id)
    view["run_id"] = run_id
    view["answer"] = _answer_text(view)
    return render(request, "run.html", {"run": view})


@router.post("/runs/{run_id}/feedback")
async def feedback(run_id: str, request: Request, sess: Session = Depends(session)) -> Response:
    """The same checks and store as POST /v1/feedback."""
    fields = await form(request, sess)
    lists = await multi(request)
    fb = feedback_store.validate(
        run_id=run_id,
        rating=fields.get("rating") or None,
        flags=lists.get("flags") or None,
        correction=fields.get("correction") or None,
        comment=fields.get("comment") or None,
    )
    saved = await run_in_threadpool(
        feedback_store.submit, runtime(request).engine, _lookup(request), sess.principal, fb
    )
    if not request.headers.get("hx-request"):
        return RedirectResponse(f"/console/runs/{run_id}?thanks=1", status_code=303)
    return render(
        request,
        "feedback_saved.html",
        {"saved": saved, "run_id": run_id, "corrected": fb.correction is not None},
    )
