"""The recognizers behind the PII guardrail: an offline Presidio analyzer, and the regex fallback.

Nothing here touches the network: the spaCy pipeline is blank unless a model package is
already installed (never downloaded), and the email recognizer validates domains with a
private tldextract extractor that reads only its bundled public-suffix snapshot.
Presidio is imported only when the analyzer is built.
"""

from __future__ import annotations

import bisect
import ipaddress
import logging
import re
from typing import Any

from aerodrome.guardrails.base import Finding
from aerodrome.knowledge import pii_scan

logger = logging.getLogger(__name__)

#: The structured types the figures hold to precision and recall ≥ 0.95.
STRUCTURED_ENTITIES = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "IP_ADDRESS",
)
#: Every type the pattern recognizers report (the regex fallback covers the structured ones).
PATTERN_ENTITIES = (
    *STRUCTURED_ENTITIES,
    "URL",
    "CRYPTO",
    "MAC_ADDRESS",
    "DATE_TIME",
    "US_ITIN",
    "US_PASSPORT",
    "US_BANK_NUMBER",
    "MEDICAL_LICENSE",
    "UK_NHS",
    "UK_NINO",
)
#: Reported only when a spaCy model with NER is installed.
NER_ENTITIES = ("PERSON", "LOCATION", "ORGANIZATION", "NRP", "DATE_TIME")

#: spaCy models used for NER when installed, best first; never downloaded.
SPACY_MODELS = ("en_core_web_lg", "en_core_web_md", "en_core_web_sm")

_REGEX_KINDS = {
    "email": "EMAIL_ADDRESS",
    "phone": "PHONE_NUMBER",
    "credit_card": "CREDIT_CARD",
    "iban": "IBAN_CODE",
    "us_ssn": "US_SSN",
    "ipv4": "IP_ADDRESS",
}
_REGEX_SCORE = 0.85

# Phone numbers. Presidio's phonenumbers-based recognizer misses national formats of
# regions it is not told about ("(96) 627-277", "027 896 92 86") and scores what it finds
# at 0.4, below the default threshold. "Strong" layouts (a leading +, a bracketed area
# code, dotted or dashed 3-3-4 groups) score 0.6 on their own; digit groups separated by
# spaces or dashes score 0.3 and need a context word (phone, mobile, fax...) to pass 0.5.
_PHONE_END = r"(?:[ ]?(?:x|ext\.?)[ ]?\d{1,6})?(?!\w|[.:/-]\d)"
_PHONE_STRONG = (
    r"(?<![\w+.:/-])(?:"
    r"\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}"  # +44 20 7946 0958
    r"|(?:00\d{1,3}[ .-]?)?\(\d{1,4}\)[ .-]?\d{2,4}(?:[ .-]?\d{2,4}){1,3}"  # (555) 123-4567
    r"|(?:00\d{1,3}[.-])?\d{2,4}[.-]\d{3}[.-]\d{3,4}"  # 555-123-4567, 001-420-335-7509
    r")" + _PHONE_END
)
_PHONE_WEAK = (
    r"(?<![\w+.:/-])(?!\d{3}-\d{2}-\d{4}\b|\d{4}-\d{2}-\d{2}\b)\d{2,5}(?:[ -]\d{2,7}){1,4}" + _PHONE_END
)
_PHONE_CONTEXT = [
    "phone", "telephone", "tel", "cell", "mobile", "call", "fax", "desk", "office", "contact",
    "number", "reach", "answering", "text", "sms", "whatsapp", "dial", "ring", "message",
]  # fmt: skip
# Card numbers outside the brand prefixes Presidio knows (12-19 digits, Luhn-valid): 0.4
# alone, above 0.5 next to "card", "cc", "visa"...
_CARD = (
    r"(?<![\w.-])\d{4}(?:[ -]?\d{4}){1,3}(?:[ -]?\d{1,3})?(?![\w]|[.-]\d)|(?<![\w.-])\d{12,19}(?![\w]|[.-]\d)"
)
_CARD_CONTEXT = [
    "card", "credit", "debit", "cc", "visa", "mastercard", "amex", "maestro", "jcb", "discover", "diners",
]  # fmt: skip
# URLs and bare domain names; Presidio's UrlRecognizer (one alternation of every TLD) costs
# about 10 ms per KB on its own.
_URL = r"\b(?:https?://|www\.)[^\s<>\"'()]+[^\s<>\"'().,;:!?]"
_DOMAIN = r"(?<![\w@.-])(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}\b(?![@-])"

# Presidio's email and IP patterns cost 4-6 ms per 10 KB each; these are as strict once
# validated (tldextract's suffix list for domains, the ipaddress module for addresses).
_EMAIL = r"(?<![\w.!#$%&'*+/=?^`{|}~-])[\w!#$%&'*+/=?^`{|}~-]+(?:\.[\w!#$%&'*+/=?^`{|}~-]+)*@(?:\w+(?:-+\w+)*\.)+\w{2,}\b"
_IPV4 = r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?:/\d{1,2})?(?![\w]|\.\d)"
_IPV6 = r"(?<![\w:])(?=[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:)[0-9A-Fa-f:]{2,39}(?:\.\d{1,3}){0,3}(?:/\d{1,3})?(?![\w:])"

_TOKEN = re.compile(r"\w+|[^\w\s]")


def regex_findings(text: str) -> list[Finding]:
    """The regex scanner's matches as findings (the fallback engine)."""
    return [Finding(_REGEX_KINDS[m.kind], m.start, m.end, _REGEX_SCORE) for m in pii_scan.scan(text)]


def _offline_nlp_engine() -> Any:
    import spacy
    from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, SpacyNlpEngine

    class OfflineNlpEngine(SpacyNlpEngine):
        """A spaCy NLP engine that never downloads a model.

        With an installed model (``en_core_web_sm``...) it runs it, NER included. Without
        one it is built on ``spacy.blank("en")`` (its vocabulary gives the stop words) and
        splits words with a regex, which is ten times faster than the blank pipeline's
        tokenizer and all the context-word enhancer needs.
        """

        def __init__(self) -> None:
            self.model_name = next((m for m in SPACY_MODELS if spacy.util.is_package(m)), None)
            super().__init__(
                models=[{"lang_code": "en", "model_name": self.model_name or "blank:en"}],
                ner_model_configuration=NerModelConfiguration(),
            )
            self._stop_words: frozenset[str] = frozenset()
            self._context_words: frozenset[str] = frozenset()

        def keep_context_words(self, words: set[str]) -> None:
            """spaCy counts "call" or "name" as stop words; context words must stay keywords."""
            self._context_words = frozenset(w.lower() for w in words)

        @property
        def has_ner(self) -> bool:
            return self.model_name is not None

        def load(self) -> None:
            nlp = spacy.load(self.model_name) if self.model_name else spacy.blank("en")
            self.nlp = {"en": nlp}  # type: ignore[assignment]  # Presidio annotates it None
            self._stop_words = frozenset(nlp.Defaults.stop_words)

        def process_text(self, text: str, language: str) -> NlpArtifacts:
            if self.has_ner:
                artifacts = super().process_text(text, language)
            else:
                words = [(m.start(), m.group()) for m in _TOKEN.finditer(text)]
                artifacts = NlpArtifacts(
                    entities=[],
                    tokens=[w for _, w in words],  # type: ignore[arg-type]  # the enhancer needs len()
                    tokens_indices=[i for i, _ in words],
                    lemmas=[],
                    nlp_engine=self,
                    language=language,
                    scores=[],
                )
                artifacts.lemmas = [w.lower() for _, w in words]
            # a set: Presidio tests membership once per word around every match
            # no digits either: the words of a match itself would use up the context window
            stop, keep = self._stop_words, self._context_words
            artifacts.keywords = {  # type: ignore[assignment]
                w for w in artifacts.lemmas if w[:1].isalpha() and (w in keep or w not in stop)
            }
            return artifacts

    return OfflineNlpEngine()


def _context_enhancer() -> Any:
    from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer

    class FastContextEnhancer(LemmaContextAwareEnhancer):
        """Presidio's enhancer, finding the token of a match by bisection instead of a scan."""

        @staticmethod
        def _find_index_of_match_token(word: str, start: int, tokens: Any, tokens_indices: list[int]) -> int:
            if not tokens_indices:
                raise ValueError(f"Did not find word {word!r} in the list of tokens")
            k = bisect.bisect_right(tokens_indices, start) - 1
            if k < 0:
                return 0
            if start < tokens_indices[k] + len(tokens[k]) or k + 1 >= len(tokens_indices):
                return k
            return k + 1

    # two words after a match count too: "69 987 88 37 office"
    return FastContextEnhancer(context_prefix_count=5, context_suffix_count=2)


def _luhn_digits(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    return 12 <= len(digits) <= 19 and pii_scan.luhn_valid(digits)


def _plausible_phone(text: str) -> bool:
    digits = sum(ch.isdigit() for ch in re.sub(r"(?:x|ext\.?)[ ]?\d+$", "", text))
    return 7 <= digits <= 15


def _ip_address(text: str) -> bool:
    try:
        ipaddress.ip_interface(text)
    except ValueError:
        return False
    return True


# country domains that are far more often file extensions: "config-reference.md", "hookspecs.py"
_FILE_SUFFIXES = frozenset({"md", "py", "sh", "rs", "so", "cs", "zip", "mov"})


def _plausible_domain(extractor: Any, text: str) -> bool:
    parts = extractor(text)
    return bool(parts.suffix and parts.domain) and parts.suffix.lower() not in _FILE_SUFFIXES


def _offline_recognizers() -> list[Any]:
    import tldextract
    from presidio_analyzer import Pattern, PatternRecognizer, RecognizerResult
    from presidio_analyzer import predefined_recognizers as pr
    from presidio_analyzer.nlp_engine import NlpArtifacts

    extractor = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)
    extractor("example.com")  # load the bundled snapshot now, not on the first email

    street = re.compile(
        r"[ ]+(?:[A-Z][\w'.-]*[ ]+){0,3}(?:St|Street|Rd|Road|Dr|Drive|Ave|Avenue|Pl|Place|Ln|Lane|Blvd|Boulevard"
        r"|Way|Ct|Court|Rue|Via|Calle|Strasse|Straße|Weg|Terrace|Crescent|Parkway)\b"
    )

    class Validated(PatternRecognizer):
        def __init__(self, check: Any, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._check = check

        def analyze(
            self,
            text: str,
            entities: list[str],
            nlp_artifacts: NlpArtifacts | None = None,
            regex_flags: int | None = None,
        ) -> list[RecognizerResult]:
            results = super().analyze(text, entities, nlp_artifacts, regex_flags)
            if self.supported_entities == ["PHONE_NUMBER"]:
                # weak digit groups followed by a street name are house numbers: "9543 1819 St. John Street"
                results = [r for r in results if r.score >= 0.5 or not street.match(text, r.end)]
            return results

        def validate_result(self, pattern_text: str) -> bool | None:
            # None keeps the pattern's score (True would raise it to 1.0); False drops the match
            return None if self._check(pattern_text) else False

    return [
        Validated(
            lambda t: bool(extractor(t.rpartition("@")[2]).fqdn),
            supported_entity="EMAIL_ADDRESS",
            name="AerodromeEmailRecognizer",
            patterns=[Pattern("email", _EMAIL, 0.6)],
            context=["email", "e-mail", "mail"],
        ),
        Validated(
            _plausible_phone,
            supported_entity="PHONE_NUMBER",
            name="AerodromePhoneRecognizer",
            patterns=[Pattern("phone", _PHONE_STRONG, 0.6), Pattern("digit groups", _PHONE_WEAK, 0.3)],
            context=_PHONE_CONTEXT,
        ),
        pr.CreditCardRecognizer(),
        Validated(
            _luhn_digits,
            supported_entity="CREDIT_CARD",
            name="AerodromeCardRecognizer",
            patterns=[Pattern("Luhn-valid number", _CARD, 0.4)],
            context=_CARD_CONTEXT,
        ),
        pr.IbanRecognizer(),
        pr.UsSsnRecognizer(),
        Validated(
            _ip_address,
            supported_entity="IP_ADDRESS",
            name="AerodromeIpRecognizer",
            patterns=[Pattern("IPv4", _IPV4, 0.6), Pattern("IPv6", _IPV6, 0.6)],
            context=["ip", "ipv4", "ipv6", "address", "host", "server"],
        ),
        Validated(
            lambda t: t.lower().startswith(("http", "www")) or _plausible_domain(extractor, t),
            supported_entity="URL",
            name="AerodromeUrlRecognizer",
            patterns=[Pattern("url", _URL, 0.6), Pattern("domain", _DOMAIN, 0.5)],
            context=["url", "website", "site", "link", "domain", "web"],
        ),
        pr.CryptoRecognizer(),
        pr.MacAddressRecognizer(),
        pr.DateRecognizer(),
        pr.UsItinRecognizer(),
        pr.UsPassportRecognizer(),
        pr.UsBankRecognizer(),
        pr.MedicalLicenseRecognizer(),
        pr.NhsRecognizer(),
        pr.UkNinoRecognizer(),
    ]


def build_presidio_analyzer(custom: list[tuple[str, str, float, list[str]]]) -> Any:
    """An AnalyzerEngine on pattern recognizers (plus spaCy NER if a model is installed), offline.

    ``custom`` holds (entity type, regex, score, context words) per custom recognizer; their
    regexes keep the case sensitivity they were written with.
    """
    from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
    from presidio_analyzer.predefined_recognizers import SpacyRecognizer

    nlp_engine = _offline_nlp_engine()
    nlp_engine.load()
    recognizers = _offline_recognizers()
    for name, pattern, score, context in custom:
        recognizers.append(
            PatternRecognizer(
                supported_entity=name,
                name=f"custom:{name}",
                patterns=[Pattern(name, pattern, score)],
                context=context,
                global_regex_flags=re.MULTILINE,
            )
        )
    if nlp_engine.has_ner:
        entities = [e for e in nlp_engine.get_supported_entities() if e in NER_ENTITIES]
        recognizers.append(SpacyRecognizer(supported_language="en", supported_entities=entities))
        logger.info("PII guardrail: NER from spaCy model %s", nlp_engine.model_name)
    nlp_engine.keep_context_words({w for r in recognizers for w in (r.context or [])})
    registry = RecognizerRegistry(recognizers=recognizers, supported_languages=["en"])
    return AnalyzerEngine(
        registry=registry,
        nlp_engine=nlp_engine,
        supported_languages=["en"],
        context_aware_enhancer=_context_enhancer(),
    )
