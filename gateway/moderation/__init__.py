"""Moderation: accounts, actions on contributions, the queue, grouping, redaction, charts."""
