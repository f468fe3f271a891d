"""What a session loads once and every claim reuses (dataset tensors on the device, decoded image folders): one
cache with a lifetime, instead of one dict per family module. The plugin clears it when the session ends, so
a second session in the same process (the tests run many) never sees the first one's data; a worker process
keeps its own for as long as it lives."""
from __future__ import annotations

from typing import Any, Callable, Hashable

_SESSION: dict[Hashable, Any] = {}


def session_cached(key: Hashable, make: Callable[[], Any]) -> Any:
    """``make()`` once per session for ``key`` (a tuple naming everything the value depends on)."""
    if key not in _SESSION:
        _SESSION[key] = make()
    return _SESSION[key]


def clear() -> None:
    _SESSION.clear()
