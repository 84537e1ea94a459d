"""Run the ``headstart`` CLI in a Python that behaves like the light ``pip install 'headstart[predict]'``:
every module of the other extras (torch, timm, torchvision, scikit-learn, matplotlib, optuna, onnx,
fastapi, ...) fails to import with the ``ModuleNotFoundError`` a missing package raises, while
numpy, Pillow, pydantic, PyYAML and onnxruntime stay importable. A real venv test checks the same
with nothing blocked but nothing extra installed (tests/export/test_light_install.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from headstart._imports import EXTRA_MODULES

LIGHT = {"onnxruntime"}  # what headstart[predict] adds to the base install
BLOCKED = sorted({m for modules in EXTRA_MODULES.values() for m in modules} - LIGHT
                 | {"skimage", "cmaes", "sqlalchemy", "psycopg2"})

BLOCK_HEAVY = f"""
import sys, importlib.abc
class _NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.split('.')[0]
        if top in {BLOCKED!r}:
            raise ModuleNotFoundError(f"No module named {{top!r}} (blocked: a light install)", name=top)
        return None
sys.meta_path.insert(0, _NotInstalled())
"""

RUN_CLI = BLOCK_HEAVY + """
import runpy
sys.argv = ['headstart', *sys.argv[1:]]
runpy.run_module('headstart', run_name='__main__')
"""


def light_cli(*args, cwd: str | Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """``headstart ARGS`` in a subprocess whose heavy imports fail."""
    return subprocess.run([sys.executable, "-c", RUN_CLI, *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd, env=env)
