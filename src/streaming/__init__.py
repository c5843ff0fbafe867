"""The streaming function: an ASGI app that streams task exports (see app.py)."""
