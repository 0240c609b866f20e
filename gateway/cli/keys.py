"""`gateway keys`: the keyring that encrypts residents' addresses, its rotation and the
retirement of old keys (gateway.keyring, gateway.rotation). Shows key ids, never keys."""

from __future__ import annotations

import click

from gateway.keyring import KeyringError


@click.group("keys")
def keys_group() -> None:
    """The keys that encrypt residents' addresses: status, rotation, retirement."""


@keys_group.command("status")
def keys_status() -> None:
    """How many values each key id still encrypts, column by column."""
    from gateway.cli.common import open_runtime
    from gateway.rotation import hash_audit, status

    runtime = open_runtime(redis=False)
    try:
        counts = status(runtime.engine)
        vault = runtime.vault
        click.echo(f"current key id: {vault.current_key_id}")
        click.echo("key ids in the ring: " + ", ".join(str(k) for k in vault.key_ids))
        totals: dict[int, int] = {}
        for name, per_key in counts.items():
            shown = ", ".join(f"key {k}: {n}" for k, n in sorted(per_key.items())) or "empty"
            click.echo(f"{name}: {shown}")
            for key_id, count in per_key.items():
                totals[key_id] = totals.get(key_id, 0) + count
        for key_id in sorted(totals):
            click.echo(f"key id {key_id}: {totals[key_id]} value(s)")
        # Under which key the look-up hashes are: after a rotation, only the rows that keep
        # no address stay under the root's (docs/privacy.md, "Keys and rotation").
        for name, kinds in hash_audit(runtime.engine, vault).items():
            shown = ", ".join(
                f"key {k}: {n}" if isinstance(k, int) else f"{k}: {n}"
                for k, n in sorted(kinds.items(), key=lambda kv: str(kv[0]))
            )
            click.echo(f"{name} (look-up hashes): {shown or 'empty'}")
    finally:
        runtime.close()


@keys_group.command("rotate")
@click.option("--batch", default=500, show_default=True, type=click.IntRange(1, 100_000))
def keys_rotate(batch: int) -> None:
    """Make a new key current and re-encrypt every value under the older ones, in batches,
    while the gateway runs. Run it again after an interruption: it goes on where it stopped."""
    from gateway.cli.common import open_runtime
    from gateway.rotation import RotationError, rotate

    runtime = open_runtime(redis=False)
    try:
        try:
            report = rotate(
                runtime.engine, runtime.vault, runtime.settings.secret_key_path, batch=batch
            )
        except (RotationError, KeyringError) as exc:
            raise click.ClickException(str(exc)) from exc
    finally:
        runtime.close()
    if report.new_key:
        click.echo(f"key id {report.key_id} is now current")
    else:
        click.echo(f"a rotation to key id {report.key_id} was under way: continued")
    for name, count in report.rewritten.items():
        unreadable = report.unreadable.get(name, 0)
        extra = f", {unreadable} unreadable (left as they are)" if unreadable else ""
        click.echo(f"{name}: {count} re-encrypted{extra}")
    click.echo(f"{report.total} value(s) re-encrypted in {report.passes} pass(es)")
    for name, count in report.rehashed.items():
        click.echo(f"{name}: {count} re-hashed")
    conflicts = (
        f", {report.conflicts} row(s) left (see docs/privacy.md)" if report.conflicts else ""
    )
    click.echo(f"{report.people} person(s) re-hashed under key id {report.key_id}{conflicts}")


@keys_group.command("retire")
@click.argument("key_id", type=click.IntRange(1, 0xFFFF))
def keys_retire(key_id: int) -> None:
    """Remove an old key, once no value is encrypted under it any more."""
    from gateway.cli.common import open_runtime
    from gateway.rotation import RotationError, retire

    runtime = open_runtime(redis=False)
    try:
        try:
            retire(runtime.engine, runtime.settings.secret_key_path, key_id)
        except (RotationError, KeyringError) as exc:
            raise click.ClickException(str(exc)) from exc
    finally:
        runtime.close()
    click.echo(f"key id {key_id} retired")
