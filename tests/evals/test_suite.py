"""Suite files: the format, every problem as FILE:LINE, the content digest, third-party assertions."""

from __future__ import annotations

import asyncio
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

from aerodrome import hookspecs
from aerodrome.evals.scoring import Observation, Score
from aerodrome.evals.suite import SuiteInvalid, SuiteNotFound, load_suite
from aerodrome.usecases.spec import UseCaseSpec

SPEC = UseCaseSpec.model_validate(
    {
        "id": "faq",
        "title": "FAQ",
        "departments": ["hr", "finance"],
        "inputs": {"question": {"type": "string", "required": True, "max_length": 50}},
        "prompt": "{{ question }}",
        "model": "chat-small",
    }
)


def _write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")


def test_yaml_and_jsonl_make_one_suite(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "faq.yaml",
        "usecase: faq\nthreshold: 0.9\nassertions: [cites]\ncases:\n"
        "  - id: one\n    inputs: {question: a}\n    reference: A\n"
        "    assertions:\n      - contains: x\n      - {type: regex, pattern: '^E'}\n"
        "      - json_schema: {type: object}\n      - refuses\n      - numeric: {value: 3, tolerance: 0.5}\n",
    )
    _write(
        tmp_path,
        "faq.jsonl",
        '{"id": "two", "source": "live", "department": "finance", "inputs": {"question": "b"}, '
        '"assertions": [{"type": "similar", "min": 0.8}], "origin": {"run_id": "r1"}}\n\n',
    )
    suite = load_suite(tmp_path, "faq", SPEC)
    assert suite.threshold == 0.9 and [c.id for c in suite.cases] == ["one", "two"]
    one, two = suite.cases
    assert [a.kind for a in one.assertions] == [
        "cites",
        "contains",
        "regex",
        "json_schema",
        "refuses",
        "numeric",
    ]
    assert one.reference == "A" and one.source == "curated" and one.department is None
    assert [a.kind for a in two.assertions] == [
        "cites",
        "similar",
    ]  # the suite's assertions apply to every case
    assert two.source == "live" and two.department == "finance" and two.origin == {"run_id": "r1"}
    digest = suite.digest
    assert load_suite(tmp_path, "faq", SPEC).digest == digest
    _write(tmp_path, "faq.jsonl", (tmp_path / "faq.jsonl").read_text().replace('"b"', '"c"'))
    assert load_suite(tmp_path, "faq", SPEC).digest != digest


def test_every_problem_is_named_with_its_file_and_line(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "faq.yaml",
        "usecase: other\n"  # 1
        "threshold: 2\n"  # 2
        "colour: blue\n"  # 3
        "cases:\n"  # 4
        "  - id: a\n"  # 5
        "    inputs: {question: 7}\n"  # 6
        "    assertions: [{bogus: 1}]\n"  # 7
        "  - id: a\n"  # 8
        "    inputs: {question: ok}\n"  # 9
        "    assertions: [cites]\n"  # 10
        "  - id: b\n"  # 11
        "    inputs: {question: ok}\n"  # 12
        "    department: sales\n"  # 13
        "    source: imagined\n"  # 14
        "    assertions:\n"  # 15
        "      - numeric: {value: x}\n"  # 16
        "      - regex: '('\n"  # 17
        "  - id: c\n"  # 18
        "    inputs: {question: ok}\n",  # 19
    )
    _write(tmp_path, "faq.jsonl", '{"id": "d", "inputs": {}, "assertions": ["cites"]}\nnot json\n')
    with pytest.raises(SuiteInvalid) as caught:
        load_suite(tmp_path, "faq", SPEC)
    found = [str(p).replace(str(tmp_path) + "/", "") for p in caught.value.problems]
    assert found == [
        "faq.yaml:3: colour: unknown field (fields: ['assertions', 'cases', 'description', 'threshold', 'usecase'])",
        "faq.yaml:1: usecase: the suite names 'other' but its file is for 'faq'",
        "faq.yaml:2: threshold: threshold is the pass rate needed, from 0 to 1",
        "faq.yaml:6: cases.0.inputs: inputs.question: must be a string, not int",
        "faq.yaml:7: cases.0.assertions.0: unknown assertion 'bogus' (known: cites, contains, exact, grounded, "
        "json_schema, judge, not_contains, numeric, refuses, regex, similar, status)",
        "faq.yaml:8: cases.1.id: the case id 'a' is already used in faq.yaml:5",
        "faq.yaml:14: cases.2.source: source must be curated or live, not 'imagined'",
        "faq.yaml:13: cases.2.department: the use case is not live in 'sales' (it is in ['hr', 'finance'])",
        "faq.yaml:16: cases.2.assertions.0.value: Input should be a valid number, unable to parse string as a number",
        "faq.yaml:17: cases.2.assertions.1.pattern: not a valid regular expression: missing ), unterminated "
        "subpattern at position 0",
        "faq.yaml:18: cases.3: a case needs at least one assertion (here or in the suite's assertions)",
        "faq.jsonl:1: inputs: inputs.question: is required",
        "faq.jsonl:2: (line): not valid JSON: invalid literal, expected 'null': line 1 column 1 (char 0)",
    ]
    assert caught.value.to_dict()["error"]["problems"][0] == {
        "source": str(tmp_path / "faq.yaml"),
        "line": 3,
        "field": "colour",
        "message": "unknown field (fields: ['assertions', 'cases', 'description', 'threshold', 'usecase'])",
    }


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(SuiteNotFound, match=r"has no eval suite; write .*faq\.yaml"):
        load_suite(tmp_path, "faq", SPEC)
    with pytest.raises(SuiteNotFound, match="no eval suites folder"):
        load_suite(None, "faq", SPEC)
    _write(tmp_path, "faq.yaml", "cases: [\n")
    with pytest.raises(SuiteInvalid, match=r"faq.yaml:2: \(file\): not valid YAML"):
        load_suite(tmp_path, "faq", SPEC)
    _write(tmp_path, "faq.yaml", "cases: []\n")
    with pytest.raises(SuiteInvalid, match="the suite has no cases"):
        load_suite(tmp_path, "faq", SPEC)


class _Polite:
    kind = "polite"

    def __init__(self, params: Any) -> None:
        self.word = params.get("word", "please")

    async def score(self, obs: Observation, tools: Any) -> Score:
        return Score(self.word in obs.text, f"looked for {self.word!r}")


def test_third_party_assertions_register_as_entry_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A package adds an assertion type under ``aerodrome.scorers``, like the built-ins are registered."""
    ep = EntryPoint(name="polite", value="tests.evals.test_suite:_Polite", group=hookspecs.SCORERS_GROUP)

    def entry_points(group: str) -> list[EntryPoint]:
        return [ep] if group == hookspecs.SCORERS_GROUP else []

    monkeypatch.setattr(hookspecs, "entry_points", entry_points)
    _write(
        tmp_path,
        "faq.yaml",
        "cases:\n  - id: a\n    inputs: {question: q}\n    assertions: [{polite: {word: thanks}}]\n",
    )
    (case,) = load_suite(tmp_path, "faq", SPEC).cases
    (assertion,) = case.assertions
    obs = Observation(case_id="a", inputs={}, reference=None, status="ok", output="thanks a lot")
    assert asyncio.run(assertion.score(obs, None)) == Score(True, "looked for 'thanks'")
