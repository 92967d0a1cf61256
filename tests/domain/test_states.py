"""The transition table: legal paths pass, everything else raises IllegalTransition."""

from __future__ import annotations

import itertools

import pytest

from rfq_engine.domain import TERMINAL, TRANSITIONS, IllegalTransition, RfqState, check_transition

S = RfqState


def test_every_state_has_a_row_and_terminal_states_are_dead_ends() -> None:
    assert set(TRANSITIONS) == set(RfqState)
    for state in TERMINAL:
        assert TRANSITIONS[state] == frozenset()
        assert state.is_terminal


@pytest.mark.parametrize("path", [
    [S.CREATED, S.PENDING_APPROVAL, S.OPEN, S.AWARDING, S.CONFIRMING, S.FILLED],
    [S.CREATED, S.OPEN, S.AWARDING, S.CONFIRMING, S.AWARDING, S.CONFIRMING, S.PARTIALLY_FILLED],
    [S.CREATED, S.OPEN, S.AWARDING, S.NOT_FILLED],
    [S.CREATED, S.REJECTED],
    [S.CREATED, S.PENDING_APPROVAL, S.EXPIRED],
    [S.CREATED, S.OPEN, S.EXPIRED],
])
def test_lifecycle_paths_are_legal(path: list[RfqState]) -> None:
    for current, target in itertools.pairwise(path):
        check_transition("r", current, target)


def test_cancel_and_fail_are_allowed_from_every_non_terminal_state() -> None:
    for state in RfqState:
        if not state.is_terminal:
            check_transition("r", state, S.CANCELLED)
            check_transition("r", state, S.FAILED)


@pytest.mark.parametrize(("current", "target"), [
    (S.CREATED, S.FILLED), (S.OPEN, S.CONFIRMING), (S.FILLED, S.OPEN),
    (S.CANCELLED, S.OPEN), (S.AWARDING, S.FILLED), (S.PENDING_APPROVAL, S.AWARDING),
])
def test_illegal_transitions_raise_a_typed_error(current: RfqState, target: RfqState) -> None:
    with pytest.raises(IllegalTransition) as err:
        check_transition("rfq-1", current, target)
    assert err.value.current == current.value and err.value.target == target.value
    assert "rfq-1" in str(err.value)
