"""The shared fixtures are in ``tests/fixtures.py``, a pytest plugin that the root
``conftest.py`` registers for the whole repository (the tests beside each channel, under
``channels/<provider>/tests/``, need them too, and a conftest here applies only below
``tests/``). Its helpers are still importable from here."""

from tests.fixtures import (
    DEFAULT_PG,
    IN_CI,
    REPO,
    TEST_CAMPAIGNS,
    RedisServer,
    _truncate_postgres,
    free_port,
    require_tool,
    unavailable,
)

__all__ = [
    "DEFAULT_PG",
    "IN_CI",
    "REPO",
    "TEST_CAMPAIGNS",
    "RedisServer",
    "_truncate_postgres",
    "free_port",
    "require_tool",
    "unavailable",
]
