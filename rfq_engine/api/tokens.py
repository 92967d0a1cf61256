"""Bearer tokens: a strong random one (``rfq api new-token``) and the minimum strength
``rfq api hash-token`` asks of one a person chose.

The strength is a conservative estimate, in bits: each character that is not predictable
from the two before it (a repeat ``aaaa`` or a run ``abcd``, ``2468``, ``9876``) counts the
lower of the token's per-character Shannon entropy and the size of the alphabets it draws
from (lowercase, uppercase, digits, punctuation). A repeated word scores by its few distinct
letters. The estimate never exceeds the real strength of a random token; it only refuses
some random ones that are short (16 hex digits), which ``new-token`` would beat anyway.
"""

from __future__ import annotations

import math
import secrets
import string
from collections import Counter
from typing import Final

__all__ = ["MIN_BITS", "MIN_LENGTH", "estimated_bits", "new_token", "token_problem"]

MIN_LENGTH: Final = 16
MAX_LENGTH: Final = 512
MIN_BITS: Final = 64
PREFIX: Final = "rfq_"
"""New tokens start with it, so a secret scanner can recognise a leaked one."""
_ALPHABETS: Final = (string.ascii_lowercase, string.ascii_uppercase, string.digits,
                     string.punctuation)


def new_token() -> str:
    """``rfq_`` and 43 URL-safe characters: 256 random bits."""
    return PREFIX + secrets.token_urlsafe(32)


def estimated_bits(token: str) -> float:
    if not token:
        return 0.0
    counts = Counter(token)
    n = len(token)
    shannon = sum(c / n * math.log2(n / c) for c in counts.values())
    alphabet = sum(len(a) for a in _ALPHABETS if any(ch in a for ch in token))
    per_char = min(shannon, math.log2(max(alphabet, 1)))
    fresh = sum(1 for i in range(n) if i < 2 or
                ord(token[i]) - ord(token[i - 1]) != ord(token[i - 1]) - ord(token[i - 2]))
    return fresh * per_char


def token_problem(token: str) -> str | None:
    """Why ``token`` is too weak to be a bearer token, or None when it will do."""
    if len(token) < MIN_LENGTH:
        return f"a token must be at least {MIN_LENGTH} characters"
    if len(token) > MAX_LENGTH:
        return f"a token must be at most {MAX_LENGTH} characters"
    if any(not (33 <= ord(ch) <= 126) for ch in token):
        return "a token must be printable ASCII without spaces (it travels in an HTTP header)"
    bits = estimated_bits(token)
    if bits < MIN_BITS:
        return (f"this token is too easy to guess (about {bits:.0f} bits; at least {MIN_BITS} "
                "needed: repeats, runs like abcd and a small alphabet count against it); "
                "`rfq api new-token` makes a strong one")
    return None
