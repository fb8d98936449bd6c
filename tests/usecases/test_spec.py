"""Specs, templates, inputs and review policy as units; the CLI on spec files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aerodrome.cli import app
from aerodrome.errors import UnprocessableInput
from aerodrome.usecases.guarding import _merge_placeholders
from aerodrome.usecases.inputs import validate_inputs
from aerodrome.usecases.loader import check_file, load_folder
from aerodrome.usecases.review_policy import review_reasons
from aerodrome.usecases.spec import UseCaseSpec
from aerodrome.usecases.template import PromptTemplate, TemplateFailed
from aerodrome.usecases.validation import PlatformRefs, check_spec

REFS = PlatformRefs(
    departments=frozenset({"hr", "finance"}),
    chat_aliases=frozenset({"chat-local"}),
    collections=frozenset({"hr-policies"}),
)


def _spec(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "t",
        "title": "T",
        "departments": ["hr"],
        "inputs": {
            "question": {"type": "string", "required": True, "max_length": 20},
            "count": {"type": "integer", "minimum": 1, "maximum": 5},
            "tone": {"type": "enum", "values": ["formal", "friendly"], "default": "formal"},
            "urgent": {"type": "boolean"},
            "tags": {"type": "array", "max_length": 2},
        },
        "prompt": "{{ question }} {{ tone }}",
        "model": "chat-local",
    }
    base.update(kw)
    return base


def test_a_valid_spec_has_no_problems_and_a_stable_digest() -> None:
    checked = check_spec(_spec(), REFS)
    assert checked.ok, checked.problems
    assert checked.spec is not None
    again = UseCaseSpec.model_validate(checked.spec.canonical())
    assert again.digest() == checked.spec.digest()
    changed = UseCaseSpec.model_validate({**_spec(), "title": "Other"})
    assert changed.digest() != checked.spec.digest()
    assert checked.spec.main_input() == "question"


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"id": "Bad Id"}, "id", "pattern"),
        ({"departments": []}, "departments", "at least 1"),
        ({"departments": ["sales"]}, "departments.0", "unknown department"),
        ({"model": "chat-huge"}, "model", "unknown chat model"),
        ({"inputs": {"question": {"type": "text"}}}, "inputs.question.type", "string"),
        ({"inputs": {"q": {"type": "integer", "max_length": 3}}}, "inputs.q", "string and array"),
        ({"inputs": {"q": {"type": "enum"}}}, "inputs.q", "values"),
        ({"inputs": {"context": {}}}, "inputs", "reserved"),
        ({"inputs": {"a-b": {}}}, "inputs", "identifier"),
        ({"prompt": "{{ question }} {{ colour }}"}, "prompt", "unknown variable 'colour'"),
        ({"prompt": "{% if question %}unclosed"}, "prompt", "syntax"),
        ({"output": {"format": "json"}}, "output", "schema"),
        ({"output": {"format": "json", "schema": {"type": "nope"}}}, "output.schema", "JSON Schema"),
        ({"output": {"format": "json", "schema": {"type": "array"}}}, "output", "type: object"),
        ({"retrieval": {"collections": ["nope"]}}, "retrieval.collections.0", "unknown collection"),
        ({"guardrails": {"pii": {"action": "shred"}}}, "guardrails.pii.action", "detect"),
        (
            {"guardrails": {"output": {"require_citations": True}}},
            "guardrails.output.require_citations",
            "needs retrieval",
        ),
        ({"guardrails": {"output": {"pii": {"action": "shred"}}}}, "guardrails.output.pii.action", "redact"),
        (
            {"guardrails": {"output": {"pii": {"entities": ["EMAIL", "PHONE_NUMBER"]}}}},
            "guardrails.output.pii",
            "unknown pii entity types ['email']",
        ),
        (
            {"guardrails": {"output": {"prompt_leak": {"min_chars": 5}}}},
            "guardrails.output.prompt_leak.min_chars",
            "greater than or equal to 16",
        ),
        (
            {"guardrails": {"output": {"prompt_leak": {"action": "fallback"}}}},
            "guardrails.output.prompt_leak.action",
            "'flag' or 'block'",
        ),
        ({"guardrails": {"output": {"prompt_leak": {}}}}, "guardrails.output.prompt_leak", "system prompt"),
        ({"guardrails": {"custom": {"nope": {}}}}, "guardrails.custom.nope", "unknown guardrail"),
        ({"review": {"sample_rate": 2}}, "review.sample_rate", "less than or equal"),
        ({"surprise": 1}, "surprise", "Extra inputs"),
        (
            {"success_criteria": [{"metric": "happiness", "at_least": 1}]},
            "success_criteria.0.metric",
            "unknown metric",
        ),
        ({"success_criteria": [{"metric": "useful_rate"}]}, "success_criteria.0", "exactly one"),
    ],
)
def test_invalid_specs_name_the_field(change: dict[str, Any], field: str, words: str) -> None:
    checked = check_spec(_spec(**change), REFS)
    assert not checked.ok
    matching = [p for p in checked.problems if p.field == field]
    assert matching, [str(p) for p in checked.problems]
    assert words.lower() in matching[0].message.lower()


def test_problems_in_a_file_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "id: bad\ntitle: Bad\ndepartments: [hr, sales]\ninputs:\n  q: {type: string, max_length: lots}\n"
        "prompt: |\n  first line\n  {{ qq }}\nmodel: chat-local\n",
        encoding="utf-8",
    )
    checked = check_file(path, REFS)
    lines = {p.field: p.line for p in checked.check.problems}
    assert lines["inputs.q.max_length"] == 5
    assert lines["prompt"] == 8  # the template's second line, inside the block
    assert lines["departments.1"] == 3
    assert str(checked.check.problems[0]).startswith(f"{path}:")
    path.write_text("id: x\ntitle: [unclosed\n", encoding="utf-8")
    problem = check_file(path, REFS).check.problems[0]
    assert problem.field == "(file)" and "YAML" in problem.message and problem.line is not None
    path.write_bytes(b"id: \xff\xfe\n")
    assert "UTF-8" in check_file(path, REFS).check.problems[0].message


def test_two_files_with_one_id(tmp_path: Path) -> None:
    for name in ("a.yaml", "b.yml"):
        (tmp_path / name).write_text(
            "id: same\ntitle: S\ndepartments: [hr]\ninputs: {q: {}}\nprompt: '{{ q }}'\nmodel: chat-local\n",
            encoding="utf-8",
        )
    (tmp_path / "notes.txt").write_text("not a spec", encoding="utf-8")
    loaded = load_folder(tmp_path, REFS)
    assert len(loaded.files) == 2
    assert loaded.files[0].check.ok and not loaded.files[1].check.ok
    assert "already defined" in loaded.files[1].check.problems[0].message


def test_templates_are_sandboxed_and_strict() -> None:
    evil = PromptTemplate("{{ question.__class__.__mro__[1].__subclasses__() }}", name="t")
    with pytest.raises(TemplateFailed) as exc:
        evil.render({"question": "x"})
    assert exc.value.code == "template_error"
    with pytest.raises(TemplateFailed):
        PromptTemplate("{{ missing }}", name="t").render({})
    with pytest.raises(TemplateFailed):  # the immutable sandbox refuses to change what it is given
        PromptTemplate("{{ items.append(1) }}", name="t").render({"items": []})
    with pytest.raises(TemplateFailed, match="characters"):
        PromptTemplate("{% for i in range(99999) %}{{ 'x' * 10 }}{% endfor %}", name="t").render({})
    assert PromptTemplate("{{ q | upper }}", name="t").render({"q": "hi"}) == "HI"


def test_inputs_are_checked_and_defaults_filled() -> None:
    spec = UseCaseSpec.model_validate(_spec())
    values = validate_inputs(spec, {"question": "hello", "count": 2, "tags": ["a"]}, max_bytes=10_000)
    assert values == {"question": "hello", "count": 2, "tone": "formal", "urgent": None, "tags": ["a"]}
    bad: list[tuple[dict[str, Any], str]] = [
        ({}, "inputs.question"),
        ({"question": "x" * 21}, "inputs.question"),
        ({"question": "ok", "count": 9}, "inputs.count"),
        ({"question": "ok", "count": True}, "inputs.count"),
        ({"question": "ok", "count": 1.5}, "inputs.count"),
        ({"question": "ok", "tone": "rude"}, "inputs.tone"),
        ({"question": "ok", "urgent": "yes"}, "inputs.urgent"),
        ({"question": "ok", "tags": ["a", "b", "c"]}, "inputs.tags"),
        ({"question": "ok", "tags": "a"}, "inputs.tags"),
        ({"question": "a\x00b"}, "inputs.question"),
        ({"question": "ok", "extra": 1}, "inputs.extra"),
    ]
    for given, param in bad:
        with pytest.raises(UnprocessableInput) as exc:
            validate_inputs(spec, given, max_bytes=10_000)
        assert exc.value.param == param, given
        assert exc.value.status == 422
    with pytest.raises(UnprocessableInput) as exc:
        validate_inputs(spec, {"question": "ok"}, max_bytes=10)
    assert exc.value.param == "inputs"


def test_review_policy() -> None:
    spec = UseCaseSpec.model_validate(_spec(risk_tier="high", review={"when": ["flagged", "risk_high"]}))
    assert review_reasons(spec, flags=[], fallback=False, draw=lambda: 0.0) == ["risk_high"]
    spec = UseCaseSpec.model_validate(_spec(review={"when": ["flagged", "fallback"], "sample_rate": 0.1}))
    assert review_reasons(spec, flags=["flagged:pii"], fallback=False, draw=lambda: 0.99) == ["flagged:pii"]
    assert review_reasons(spec, flags=[], fallback=True, draw=lambda: 0.99) == ["fallback"]
    assert review_reasons(spec, flags=[], fallback=False, draw=lambda: 0.05) == ["sample"]
    assert review_reasons(spec, flags=[], fallback=False, draw=lambda: 0.5) == []
    always = UseCaseSpec.model_validate(_spec(review={"when": ["always"]}))
    assert review_reasons(always, flags=[], fallback=False, draw=lambda: 1.0) == ["always"]


def test_placeholders_of_several_inputs_never_collide() -> None:
    into: dict[str, str] = {}
    first = _merge_placeholders("mail <EMAIL_ADDRESS_1>", {"<EMAIL_ADDRESS_1>": "a@x.com"}, into)
    second = _merge_placeholders(
        "cc <EMAIL_ADDRESS_1> and <EMAIL_ADDRESS_2>",
        {"<EMAIL_ADDRESS_1>": "b@x.com", "<EMAIL_ADDRESS_2>": "a@x.com"},
        into,
    )
    assert first == "mail <EMAIL_ADDRESS_1>"
    assert second == "cc <EMAIL_ADDRESS_2> and <EMAIL_ADDRESS_1>"
    assert into == {"<EMAIL_ADDRESS_1>": "a@x.com", "<EMAIL_ADDRESS_2>": "b@x.com"}


def _workspace(tmp_path: Path, spec_text: str) -> Path:
    (tmp_path / "usecases").mkdir()
    (tmp_path / "usecases" / "one.yaml").write_text(spec_text, encoding="utf-8")
    config = tmp_path / "aerodrome.yaml"
    config.write_text(
        "database: {url: 'sqlite:///cli.db'}\ndepartments: [{id: hr}]\nproviders: [{name: local, kind: local}]\n"
        "deployments: [{name: local-extractive, provider: local, model: extractive-v1}]\n"
        "aliases: [{name: chat-local, deployments: [local-extractive]}]\nusecases: {dir: usecases}\n",
        encoding="utf-8",
    )
    return config


GOOD = "id: one\ntitle: One\ndepartments: [hr]\ninputs: {q: {required: true}}\nprompt: '{{ q }}'\nmodel: chat-local\n"


def test_cli_validate_list_show(tmp_path: Path) -> None:
    runner = CliRunner()
    config = _workspace(tmp_path, GOOD)
    result = runner.invoke(app, ["usecases", "validate", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "1 spec file(s) valid" in result.output
    result = runner.invoke(app, ["usecases", "list", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    assert '"version": 1' in result.output and '"id": "one"' in result.output
    (tmp_path / "usecases" / "one.yaml").write_text(
        GOOD.replace("title: One", "title: Two"), encoding="utf-8"
    )
    result = runner.invoke(app, ["usecases", "show", "one", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "version 2 of 2" in result.output and "title: Two" in result.output
    result = runner.invoke(app, ["usecases", "show", "one", "--version", "1", "--config", str(config)])
    assert "title: One" in result.output
    result = runner.invoke(app, ["usecases", "show", "nope", "--config", str(config)])
    assert result.exit_code == 1 and "nope" in result.output


def test_cli_validate_reports_every_problem_and_fails(tmp_path: Path) -> None:
    config = _workspace(
        tmp_path, GOOD.replace("model: chat-local", "model: chat-big").replace("{{ q }}", "{{ x }}")
    )
    result = CliRunner().invoke(app, ["usecases", "validate", "--config", str(config)])
    assert result.exit_code == 1
    out = result.output
    assert "one.yaml:6: model: unknown chat model alias 'chat-big'" in out
    assert "one.yaml:5: prompt: unknown variable 'x'" in out


def test_output_guard_problems_in_a_file_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "leaky.yaml"
    path.write_text(
        "id: leaky\ntitle: Leaky\ndepartments: [hr]\ninputs: {q: {}}\nprompt: '{{ q }}'\nmodel: chat-local\n"
        "guardrails:\n  output:\n    pii: {action: shred}\n    prompt_leak: {min_chars: 40}\n",
        encoding="utf-8",
    )
    problems = {p.field: p for p in check_file(path, REFS).check.problems}
    assert problems["guardrails.output.pii.action"].line == 9
    assert str(problems["guardrails.output.pii.action"]).startswith(f"{path}:9: ")
    path.write_text(
        "id: leaky\ntitle: Leaky\ndepartments: [hr]\ninputs: {q: {}}\nprompt: '{{ q }}'\nmodel: chat-local\n"
        "guardrails:\n  output:\n    prompt_leak: {min_chars: 40}\n",
        encoding="utf-8",
    )
    leak = [p for p in check_file(path, REFS).check.problems if p.field == "guardrails.output.prompt_leak"]
    assert leak and leak[0].line == 9 and "user_template" in leak[0].message
    path.write_text(
        "id: leaky\ntitle: Leaky\ndepartments: [hr]\ninputs: {q: {}}\nprompt: '{{ q }}'\nmodel: chat-local\n"
        "guardrails:\n  output:\n    pii: {action: redact, entities: [EMAIL_ADDRESS]}\n"
        "    prompt_leak: {min_chars: 40, user_template: true, action: block}\n",
        encoding="utf-8",
    )
    assert check_file(path, REFS).check.ok
