"""Faults against real processes: `gateway serve` and `gateway worker` killed, Redis and the
database stopped, the same message delivered to two processes at once (issue 16). Each test
fails if a message is lost or doubled, on SQLite with the embedded Redis and on PostgreSQL with
Debian's Redis."""
