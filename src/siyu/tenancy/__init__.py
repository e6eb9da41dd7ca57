"""Tenants (one WeCom corp each), staff, departments, the people who log in, sessions."""
