"""The worker: claims due rows (callback events, outbox messages), runs them, retries with backoff."""
