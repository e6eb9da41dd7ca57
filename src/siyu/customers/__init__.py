"""Customers, follow relations (customer x staff), tags, channels and the timeline."""
