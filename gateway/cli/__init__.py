"""The `gateway` command: one module per command group, the channel plugins' own commands
added from the registry (gateway.plugins).

- ``main``: the root group, ``serve``, ``worker``, ``db``, ``campaigns``, ``contributions``,
  ``models``, ``transcribe`` and ``simulate``;
- ``accounts``: ``moderators`` and ``tokens``; ``residents``: ``residents`` and
  ``quarantine``; ``secrets``; ``keys``; ``privacy``: ``purge``; ``publication``: ``export``,
  ``report``, ``decidim``, ``radio``;
- ``common``: the settings and the runtime every command opens.
"""

from __future__ import annotations

from gateway import plugins
from gateway.cli import accounts, backup, keys, privacy, publication, residents, secrets
from gateway.cli.main import main

for command in (
    *publication.COMMANDS,
    accounts.moderators_group,
    accounts.tokens_group,
    residents.residents_group,
    residents.quarantine_group,
    secrets.secrets_group,
    keys.keys_group,
    privacy.privacy_group,
    backup.backup_command,
    backup.restore_command,
):
    main.add_command(command)
for plugin in plugins.installed():
    for command in plugin.commands() if plugin.commands else ():
        main.add_command(command)

__all__ = ["main"]
