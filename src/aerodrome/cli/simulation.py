"""``aerodrome demo --simulate-pilot``: a SIMULATED pilot of the HR policy assistant, from request to report.

Simulated users of two departments (HR and the platform team; volunteers and assigned users,
each marked ``simulated: true``) send real requests through the gateway, rate the answers,
and log control tasks (done without the assistant) and treatment tasks (with it) whose
durations are drawn from known distributions. The simulated truth, against which the
report's verdicts can be checked:

* 85% of answers are rated useful (criterion: at least 70%): PASS;
* the median task takes 35% less time with the assistant (criterion: at least 15%): PASS;
* the local engine answers well within 4 s at p95: PASS;
* 18 of the 130 eligible users take part, 14% (criterion: adoption at least 30%): FAIL.

So the report should recommend *redesign* (one criterion fails). Everything it shows is
labelled as a simulation.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

USECASE = "hr-policy-assistant"
TRUE_USEFUL = 0.85
TRUE_SAVING = 0.35
CONTROL_MEDIAN_S = 300.0
SPREAD = 0.35  # lognormal sigma of task durations
RUNS_PER_USER = 8
CONTROL_TASKS_PER_USER = 4
QUESTIONS = (
    "How many weeks of parental leave do birth parents get?",
    "How many days of paid annual leave do full-time employees receive?",
    "Can I carry over unused annual leave to next year?",
    "When do I need a medical certificate for sick leave?",
    "How many days of bereavement leave are granted?",
    "Within how many days must travel expenses be submitted?",
    "How many days a week can I work remotely?",
    "Do gifts from suppliers have to be declared?",
)
COMMENTS = ("It quoted the wrong policy.", "Not what I asked.", "Too vague to act on.")


@dataclass(frozen=True, slots=True)
class SimUser:
    email: str
    department: str
    cohort: str


def users() -> list[SimUser]:
    """12 HR employees and 6 of the platform team; a third of each volunteered."""
    out = []
    for department, count in (("hr", 12), ("platform", 6)):
        for i in range(count):
            cohort = "volunteer" if i % 3 == 0 else "assigned"
            out.append(SimUser(f"sim.{department}.{i + 1}@example.com", department, cohort))
    return out


def _check(r: httpx.Response, what: str) -> dict[str, Any]:
    if r.status_code >= 400:
        raise RuntimeError(f"simulation: {what} failed: {r.status_code} {r.text[:300]}")
    data: dict[str, Any] = r.json()
    return data


def _duration(rng: random.Random, median: float) -> float:
    return round(median * math.exp(rng.gauss(0.0, SPREAD)), 1)


def run(base_url: str, admin_key: str, out_dir: Path, *, seed: int = 7, log: Any = print) -> Path:
    """Run the simulated pilot against a serving demo; returns the HTML report's path."""
    rng = random.Random(seed)
    admin = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=60)
    with admin:
        stage = _check(admin.get(f"/api/usecases/{USECASE}/stage"), "reading the stage")["stage"]
        log(f"SIMULATION: pilot of {USECASE} (stage {stage}) with {len(users())} simulated users")
        while stage in ("idea", "discovery"):
            stage = _check(admin.post(f"/api/usecases/{USECASE}/transitions", json={}), "advancing")["stage"]
            log(f"SIMULATION: {USECASE} moved to {stage}")
        keys: dict[str, str] = {}
        for user in users():
            admin.post(
                "/api/users",
                json={
                    "email": user.email,
                    "department": user.department,
                    "roles": ["user"],
                    "attributes": {"cohort": user.cohort, "simulated": True},
                },
            )  # 409 when it exists from an earlier simulation: fine
            made = _check(
                admin.post(
                    "/api/keys",
                    json={"department": user.department, "user": user.email, "name": "simulation"},
                ),
                f"a key for {user.email}",
            )
            keys[user.email] = made["key"]
        runs = ratings = tasks = 0
        for user in users():
            with httpx.Client(
                base_url=base_url, headers={"Authorization": f"Bearer {keys[user.email]}"}, timeout=60
            ) as c:
                for _ in range(CONTROL_TASKS_PER_USER):
                    _check(
                        c.post(
                            "/v1/tasks",
                            json={
                                "use_case": USECASE,
                                "group": "control",
                                "duration_s": _duration(rng, CONTROL_MEDIAN_S),
                                "outcome": "answered",
                            },
                        ),
                        "a control task",
                    )
                    tasks += 1
                for _ in range(RUNS_PER_USER):
                    question = rng.choice(QUESTIONS)
                    answer = _check(
                        c.post(f"/v1/usecases/{USECASE}/run", json={"inputs": {"question": question}}),
                        "a run",
                    )
                    runs += 1
                    useful = rng.random() < TRUE_USEFUL
                    body: dict[str, Any] = {"run_id": answer["run_id"], "rating": "up" if useful else "down"}
                    if not useful:
                        body.update(flags=["wrong"], comment=rng.choice(COMMENTS))
                    _check(c.post("/v1/feedback", json=body), "feedback")
                    ratings += 1
                    _check(
                        c.post(
                            "/v1/tasks",
                            json={
                                "use_case": USECASE,
                                "group": "treatment",
                                "duration_s": _duration(rng, CONTROL_MEDIAN_S * (1 - TRUE_SAVING)),
                                "outcome": "answered",
                                "run_ids": [answer["run_id"]],
                            },
                        ),
                        "a treatment task",
                    )
                    tasks += 1
        log(f"SIMULATION: {runs} runs, {ratings} ratings, {tasks} tasks sent through the gateway")
        time.sleep(1.0)  # let the run records reach the database (they are written in batches)
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = {}
        for fmt in ("html", "md"):
            r = admin.get(f"/api/usecases/{USECASE}/report", params={"format": fmt})
            if r.status_code >= 400:
                raise RuntimeError(f"simulation: the report failed: {r.status_code} {r.text[:300]}")
            path = out_dir / f"{USECASE}-simulated-pilot.{fmt}"
            path.write_text(r.text, encoding="utf-8")
            paths[fmt] = path
        verdict = _check(
            admin.get(f"/api/usecases/{USECASE}/report", params={"format": "json"}), "the report"
        )
    outcomes = ", ".join(f"{c['metric']} {c['outcome']}" for c in verdict["criteria"])
    log(f"SIMULATION: report {paths['html']} — {outcomes}; recommendation {verdict['recommendation']}")
    return paths["html"]
