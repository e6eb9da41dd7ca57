"""Server-rendered web UI (Chinese first) and the JSON API's routers, mounted on the app."""
