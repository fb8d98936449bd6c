"""API key material: generation, parsing and hashing.

A key looks like ``ak_<prefix>_<secret>``. Only the prefix (for lookup) and the
SHA-256 of the whole key are stored; the key itself is shown once, at creation.
Keys carry 190 bits of randomness, so a fast hash is the right tool here.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass

_ALPHABET = string.ascii_letters + string.digits
PREFIX_LEN = 10
SECRET_LEN = 32


@dataclass(frozen=True, slots=True)
class NewKey:
    plaintext: str
    prefix: str
    hash: str


def _random(n: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def generate() -> NewKey:
    prefix = _random(PREFIX_LEN)
    plaintext = f"ak_{prefix}_{_random(SECRET_LEN)}"
    return NewKey(plaintext=plaintext, prefix=prefix, hash=hash_key(plaintext))


def parse_prefix(plaintext: str) -> str | None:
    """The lookup prefix of a well-formed key, or None."""
    if len(plaintext) != 4 + PREFIX_LEN + SECRET_LEN or not plaintext.startswith("ak_"):
        return None
    if plaintext[3 + PREFIX_LEN] != "_":
        return None
    return plaintext[3 : 3 + PREFIX_LEN]


def matches(plaintext: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(plaintext), stored_hash)
