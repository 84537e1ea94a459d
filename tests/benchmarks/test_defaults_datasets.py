"""benchmarks/defaults.py: the design and held-out datasets are built with the promised splits."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("skimage")
pytest.importorskip("sklearn")

ROOT = Path(__file__).resolve().parents[2]


def _load_module():
    name = "headstart_benchmarks_defaults"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / "defaults.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


bd = _load_module()


def _count(root: Path, split: str) -> int:
    return len(list((root / split).glob("*/*.png")))


def test_design_and_held_out_groups_do_not_overlap():
    assert not set(bd.DESIGN) & set(bd.HELD_OUT) and set(bd.DESIGN) | set(bd.HELD_OUT) == set(bd.BUILDERS)


@pytest.mark.parametrize(("name", "classes", "size", "mode"), [("digits", 10, 8, "L"), ("faces", 2, 25, "L")])
def test_held_out_datasets_have_the_splits_and_native_sizes(tmp_path, name, classes, size, mode):
    bd.BUILDERS[name](tmp_path / name)
    root = tmp_path / name
    assert len(list((root / "train").iterdir())) == classes
    expected = bd.SPLITS if name == "digits" else {"train": 100, "val": 40, "test": 60}
    assert {s: _count(root, s) for s in expected} == expected
    img = Image.open(next((root / "test").glob("*/*.png")))
    assert img.size == (size, size) and img.mode == mode
    # no file in two splits
    names = [p.name for s in expected for p in (root / s).glob("*/*.png")]
    assert len(names) == len(set(names))
