"""``rfq serve --ha`` refuses what it cannot run on, before anything opens."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rfq_engine.cli.main import main
from tests.api.test_serve import write_config


def config_with(tmp_path: Path, store: str) -> Path:
    path = write_config(tmp_path)
    text, found = re.subn(r'url = "sqlite[^"]*"', store, path.read_text(), count=1)
    assert found == 1
    path.write_text(text)
    return path


def test_ha_needs_postgresql(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)  # SQLite
    assert main(["serve", "--config", str(config), "--ha"]) == 2
    assert "--ha needs a PostgreSQL audit store" in capsys.readouterr().err


@pytest.mark.parametrize("setting", ["checkpoint_path", "witness_path"])
def test_ha_needs_a_checkpoint_log_and_a_witness_together(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], setting: str) -> None:
    """A log alone could not tell the other engine's rows from rows added behind its back;
    a witness alone has no entries to publish."""
    config = config_with(tmp_path, 'url = "postgresql+asyncpg://postgres@127.0.0.1:1/none"\n'
                                   f'{setting} = "{tmp_path}/audit.{setting}"')
    assert main(["serve", "--config", str(config), "--ha"]) == 2
    assert "needs both [store] checkpoint_path" in capsys.readouterr().err


def test_name_and_advertise_go_with_ha(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    assert main(["serve", "--config", str(config), "--name", "engine-a"]) == 2
    assert "go with --ha" in capsys.readouterr().err
