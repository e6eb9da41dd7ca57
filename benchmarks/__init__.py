"""Benchmarks: run them as scripts, e.g. `.venv/bin/python benchmarks/callbacks.py --events 200`."""
