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


def test_ha_refuses_a_checkpoint_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = config_with(tmp_path, 'url = "postgresql+asyncpg://postgres@127.0.0.1:1/none"\n'
                                   f'checkpoint_path = "{tmp_path}/audit.head"')
    assert main(["serve", "--config", str(config), "--ha"]) == 2
    assert "without [store] checkpoint_path" in capsys.readouterr().err


def test_name_and_advertise_go_with_ha(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    assert main(["serve", "--config", str(config), "--name", "engine-a"]) == 2
    assert "go with --ha" in capsys.readouterr().err
