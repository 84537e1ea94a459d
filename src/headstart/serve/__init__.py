"""``headstart serve``: HTTP inference for a run folder or an exported model (FastAPI + uvicorn).

:func:`create_app` builds the ASGI app; :mod:`headstart.serve.batching` groups concurrent requests
into batches; :mod:`headstart.serve.uploads` bounds and decodes what clients send.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "create_app": "headstart.serve.app",
    "ServeSettings": "headstart.serve.app",
    "MicroBatcher": "headstart.serve.batching",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'headstart.serve' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
