"""Streaming scores with server-side state: `/v1/streams/{id}` (docs/streams.md).

store.py (the interface) with sqlite_store.py and redis_store.py; state.py (what a stream keeps);
grid.py (new readings onto the stream's grid); engine.py (one append: forecast, score, events);
service.py (create / append / read / delete with exactly-once appends); routes.py (the HTTP routes).
"""
