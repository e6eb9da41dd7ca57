"""WeCom's server API as it really behaves: callback crypto, event XML, the HTTP client.

Knows no domain and no database.
"""
