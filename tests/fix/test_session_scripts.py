"""QuickFIX's FIX 4.4 session acceptance scripts, played against our initiator (``def_player``).

The scripts are those of the QuickFIX release Debian ships (``.ci/setup`` installs them
from its source package at ``SCRIPTS``; ``RFQ_FIX_SCRIPTS`` names another directory). Every
script either runs here or is listed in ``NOT_APPLICABLE`` with the reason, which
``docs/dealers-fix.md`` repeats; a script in neither list fails the test that checks the
lists cover the directory. ``SLOW`` scripts wait for real heartbeat intervals (6 s each,
about 40 s together): they run with ``RFQ_TEST_FIX_SLOW=1``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fix.def_player import play, sections
from tests.fix.quickfix_desk import require_quickfix

SCRIPTS = Path(os.environ.get("RFQ_FIX_SCRIPTS", "/usr/local/share/quickfix/definitions/server/fix44"))

APPLY = (
    "1a_ValidLogonWithCorrectMsgSeqNum", "1a_ValidLogonMsgSeqNumTooHigh", "1c_InvalidSenderCompID",
    "1c_InvalidTargetCompID", "1d_InvalidLogonBadSendingTime", "1d_InvalidLogonLengthInvalid",
    "1d_InvalidLogonWrongBeginString", "1e_NotLogonMessage", "2a_MsgSeqNumCorrect", "2b_MsgSeqNumTooHigh",
    "2c_MsgSeqNumTooLow", "2d_GarbledMessage", "2e_PossDupAlreadyReceived", "2e_PossDupNotReceived",
    "2f_PossDupOrigSendingTimeTooHigh", "2g_PossDupNoOrigSendingTime", "2i_BeginStringValueUnexpected",
    "2k_CompIDDoesNotMatchProfile", "2m_BodyLengthValueNotCorrect", "2o_SendingTimeValueOutOfRange",
    "2q_MsgTypeNotValid", "2r_UnregisteredMsgType", "2t_FirstThreeFieldsOutOfOrder", "3b_InvalidChecksum",
    "3c_GarbledMessage", "4b_ReceivedTestRequest", "7_ReceiveRejectMessage", "8_OnlyAdminMessages",
    "10_MsgSeqNumEqual", "10_MsgSeqNumGreater", "10_MsgSeqNumLess", "11a_NewSeqNoGreater",
    "11b_NewSeqNoEqual", "11c_NewSeqNoLess", "13b_UnsolicitedLogoutMessage",
    "15_HeaderAndBodyFieldsOrderedDifferently", "19a_PossResendMessageThatHAsAlreadyBeenSent",
    "19b_PossResendMessageThatHasNotBeenSent", "SessionReset",
)
SLOW = ("4a_NoDataSentDuringHeartBtInt", "6_SendTestRequest")

_DICTIONARY = ("validates application messages against a data dictionary; our session does not: an "
               "application message the adapter cannot read is audited as InboundRejected, no Reject(3)")
_RESEND = ("expects our application messages resent with PossDupFlag; we answer every ResendRequest with "
           "one SequenceReset-GapFill (a stale quote request or award is never resent: an award's outcome "
           "is asked for with OrderStatusRequest)")
_ACCEPTOR = "a second connection with the same identity: only an acceptor accepts connections"
NOT_APPLICABLE = {
    "1b_DuplicateIdentity": _ACCEPTOR, "AlreadyLoggedOn": _ACCEPTOR,
    "8_AdminAndApplicationMessages": _RESEND, "8_OnlyApplicationMessages": _RESEND,
    "20_SimultaneousResendRequest": _RESEND,
    **{name: _DICTIONARY for name in (
        "14a_BadField", "14b_RequiredFieldMissing", "14c_TagNotDefinedForMsgType",
        "14d_TagSpecifiedWithoutValue", "14e_IncorrectEnumValue", "14f_IncorrectDataFormat",
        "14g_HeaderBodyTrailerFieldsOutOfOrder", "14h_RepeatedTag", "14i_RepeatingGroupCountNotEqual",
        "21_RepeatingGroupSpecifierWithValueOfZero", "RejectResentMessage", "ReverseRoute",
        "ReverseRouteWithEmptyRoutingTags")},
}
"""The scripts that do not apply to an initiator like ours, and why (``docs/dealers-fix.md``)."""


def _script(name: str) -> str:
    require_quickfix()
    path = SCRIPTS / f"{name}.def"
    if not path.exists():
        pytest.fail(f"no {path}: run .ci/setup (it installs QuickFIX's scripts), or set RFQ_FIX_SCRIPTS")
    return path.read_text(encoding="latin-1")


async def _run(name: str, tmp_path: Path) -> None:
    failures: list[str] = []
    for number, section in enumerate(sections(_script(name)), start=1):
        failures += [f"connection {number}: {f}" for f in await play(section, tmp_path / f"c{number}")]
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("name", APPLY)
async def test_script(name: str, tmp_path: Path) -> None:
    await _run(name, tmp_path)


@pytest.mark.skipif(os.environ.get("RFQ_TEST_FIX_SLOW") != "1", reason="set RFQ_TEST_FIX_SLOW=1")
@pytest.mark.parametrize("name", SLOW)
async def test_slow_script(name: str, tmp_path: Path) -> None:
    await _run(name, tmp_path)


def test_every_script_runs_or_says_why_not() -> None:
    require_quickfix()
    if not SCRIPTS.is_dir():
        pytest.fail(f"no {SCRIPTS}: run .ci/setup, or set RFQ_FIX_SCRIPTS")
    found = {p.stem for p in SCRIPTS.glob("*.def")}
    listed = set(APPLY) | set(SLOW) | set(NOT_APPLICABLE)
    assert found - listed == set(), f"scripts neither run nor explained: {sorted(found - listed)}"
    assert set(APPLY) | set(SLOW) <= found, f"listed but missing: {sorted(set(APPLY) | set(SLOW) - found)}"
