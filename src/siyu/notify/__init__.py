"""Outbound side effects: the outbox and its senders (WeCom calls, app messages)."""
