"""new_id: a version-4 RFC 4122 UUID in canonical text, random in its 122 free bits."""

from __future__ import annotations

import uuid

from rfq_engine.domain import new_id


def test_new_id_is_a_canonical_version_4_uuid() -> None:
    ids = [new_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    for text in ids[:2_000]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text  # canonical: lowercase, dashes at 8-4-4-4-12
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_every_free_bit_varies() -> None:
    """The version and variant bits are fixed; each of the other 122 takes both values."""
    values = [uuid.UUID(new_id()).int for _ in range(2_000)]
    fixed = (0xF << 76) | (0x3 << 62)
    ones = zeros = 0
    for value in values:
        ones |= value
        zeros |= ~value
    free = ((1 << 128) - 1) & ~fixed
    assert ones & free == free and zeros & free == free
