import pytest

from tests.conftest import UserFactory
from todo_mcp.db.engine import Database
from todo_mcp.services import tasks

pytestmark = pytest.mark.anyio


async def test_added_task_is_listed(db: Database, user_factory: UserFactory) -> None:
    user = await user_factory()
    async with db.transaction() as session:
        await tasks.add_task(session, user_id=user, title="  Buy milk ")
    async with db.transaction() as session:
        found = await tasks.list_tasks(session, user_id=user)
    assert [task.title for task in found] == ["Buy milk"]
