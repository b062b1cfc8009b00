"""Unit tests read no settings from the machine they run on."""

from __future__ import annotations

import pytest

from todo_mcp.config import Settings

# Every environment variable Settings reads, including the other name of the secret.
SETTINGS_VARIABLES = {name.upper() for name in Settings.model_fields} | {"JWT_SECRET", "BETTER_AUTH_SECRET"}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SETTINGS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
