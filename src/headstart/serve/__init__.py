"""``headstart serve``: HTTP inference for a run folder or an exported model (FastAPI + uvicorn).

:func:`create_app` builds the ASGI app; :mod:`headstart.serve.batching` groups concurrent requests
into batches; :mod:`headstart.serve.uploads` bounds and decodes what clients send.
"""

from __future__ import annotations

from headstart._lazy import attach

_LAZY = {
    "create_app": "headstart.serve.app",
    "ServeSettings": "headstart.serve.app",
    "MicroBatcher": "headstart.serve.batching",
}

__getattr__, __dir__, __all__ = attach(__name__, _LAZY)
