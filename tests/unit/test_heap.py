"""Both HTTP apps move their start-up objects out of the garbage collector's reach and collect
the youngest generation less often."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette

from tests.conftest import make_settings
from todo_mcp.api.app import build_api_app
from todo_mcp.db.engine import Database
from todo_mcp.heap import YOUNG_COLLECTION_THRESHOLD
from todo_mcp.mcp.http_app import build_http_app

pytestmark = pytest.mark.anyio


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """The collector as a fresh process has it, whatever apps earlier tests started."""
    thresholds = gc.get_threshold()
    gc.unfreeze()
    gc.set_threshold(700, *thresholds[1:])
    yield
    # The test process goes on collecting what its tests leave behind, as it did.
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.parametrize("door", ["mcp", "api"])
async def test_the_app_freezes_the_heap_when_it_starts(door: str, tmp_path: Path, unfrozen: None) -> None:
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'heap.db'}")
    db = Database.from_settings(settings)
    app: Starlette = (
        build_http_app(settings, db, host="127.0.0.1") if door == "mcp" else build_api_app(settings, db)
    )
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold()[0] < YOUNG_COLLECTION_THRESHOLD

    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == YOUNG_COLLECTION_THRESHOLD
    await db.dispose()
