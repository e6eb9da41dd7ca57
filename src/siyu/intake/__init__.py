"""WeCom callbacks in: verify, decrypt, store the raw event once, answer at once."""
