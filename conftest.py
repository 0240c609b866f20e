"""The fixtures every test shares, wherever it lives: under ``tests/`` (the core, and what
crosses channels) or beside its channel (``channels/<provider>/tests/``). They are in
``tests/fixtures.py``; registered here, at the repository's root, they apply to both trees
(a plugin must be registered from the root conftest: pytest refuses ``pytest_plugins``
elsewhere)."""

pytest_plugins = ["tests.fixtures"]
