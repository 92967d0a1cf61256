"""Every hedge program strategy has its hedge file's stated objective (a missing one would
fail the file with a KeyError for that program)."""

from rfq_engine.hedging.hedgefile import OBJECTIVES
from rfq_engine.hedging.program import Strategy


def test_every_strategy_states_its_objective() -> None:
    assert set(OBJECTIVES) == set(Strategy)
    assert all(text.strip().endswith(".") for text in OBJECTIVES.values())
