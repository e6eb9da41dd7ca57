"""Siyu (私域): an open-source SCRM for WeCom."""

__version__ = "0.1.0"
