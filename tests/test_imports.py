import subprocess
import sys

import pytest

from headstart._imports import MissingDependencyError, optional_import


def test_optional_import_hint():
    assert optional_import("json", extra="x").dumps([]) == "[]"
    with pytest.raises(MissingDependencyError, match=r"headstart export needs 'not_a_pkg'.*pip install 'headstart\[export\]'"):
        optional_import("not_a_pkg.sub", extra="export")


def test_import_headstart_is_light():
    code = "import sys, headstart; print(sorted(m for m in ('torch', 'timm', 'torchvision', 'sklearn') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
