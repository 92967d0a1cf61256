"""new_id: a version-7 (RFC 9562) UUID in canonical text: the Unix milliseconds in its first
48 bits, so ids sort by creation time as text, and random in its last 62."""

from __future__ import annotations

import os
import threading
import time
import uuid

from rfq_engine.domain import new_id


def test_new_id_is_a_canonical_version_7_uuid() -> None:
    ids = [new_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    for text in ids[:2_000]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text  # canonical: lowercase, dashes at 8-4-4-4-12
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122


def test_its_first_48_bits_are_the_wall_clock_in_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    made = new_id()
    after = time.time_ns() // 1_000_000
    assert before <= uuid.UUID(made).int >> 80 <= after


def test_a_later_id_sorts_after_an_earlier_one_as_text() -> None:
    """What the store's B-tree indexes rely on for locality (never for correctness)."""
    first = new_id()
    start = time.time_ns()
    while time.time_ns() - start < 1_100_000:  # into the next millisecond, without sleeping
        pass
    later = [new_id() for _ in range(100)]
    assert all(first < x for x in later)
    assert sorted([*later, first])[0] == first


def test_every_random_bit_varies() -> None:
    """The last 62 bits (after the variant) are random: each takes both values."""
    values = [uuid.UUID(new_id()).int for _ in range(2_000)]
    random_bits = (1 << 62) - 1
    ones = zeros = 0
    for value in values:
        ones |= value
        zeros |= ~value
    assert ones & random_bits == random_bits and zeros & random_bits == random_bits


def test_ids_of_threads_at_once_are_distinct() -> None:
    """Each thread draws its random parts from its own pool of the OS's bytes."""
    made: list[list[str]] = [[] for _ in range(4)]

    def make(into: list[str]) -> None:
        into.extend(new_id() for _ in range(5_000))

    threads = [threading.Thread(target=make, args=(m,)) for m in made]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [x for m in made for x in m]
    assert len(set(every)) == len(every) == 20_000
    assert len({x[-16:] for x in every}) == 20_000  # the random parts too


def test_a_forked_child_does_not_repeat_its_parents_random_parts() -> None:
    new_id()  # the parent's pool is filled
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.close(read)
        os.write(write, " ".join(new_id()[-16:] for _ in range(100)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split())
    os.waitpid(pid, 0)
    parent = {new_id()[-16:] for _ in range(100)}
    assert len(child) == 100 and not child & parent
