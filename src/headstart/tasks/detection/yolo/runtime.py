"""Import Ultralytics offline and quiet, on use only.

Ultralytics reads its environment when it is first imported: ``YOLO_OFFLINE`` (no online check),
``YOLO_CONFIG_DIR`` (where its settings.json and fonts live), ``YOLO_VERBOSE`` and
``YOLO_AUTOINSTALL`` (it would otherwise pip-install missing requirements). headstart sets them,
if the user has not, just before that import, never at ``import headstart``; then it turns off
the settings that report or sync (events, hub/platform, the experiment-tracker integrations).
Its dataset check looks for the Arial font it draws plots with and downloads it when missing,
even with ``plots=False``; headstart's config folder for Ultralytics holds a link named
``Arial.ttf`` to the DejaVu Sans font matplotlib ships, so that check finds a file and nothing is
fetched (no plot of Ultralytics is drawn: headstart draws its own).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["load_ultralytics", "ultralytics_config_dir", "OFF_SETTINGS", "INSTALL_HINT"]

INSTALL_HINT = (
    "YOLO detectors come from Ultralytics, which is licensed AGPL-3.0 (headstart is Apache-2.0);"
    " installing the extra is your choice."
)
# Ultralytics settings that make it talk to the network or to experiment trackers
OFF_SETTINGS = {
    "sync": False,
    "clearml": False,
    "comet": False,
    "dvc": False,
    "mlflow": False,
    "raytune": False,
    "tensorboard": False,
    "wandb": False,
    "vscode_msg": False,
    "openvino_msg": False,
}


def ultralytics_config_dir() -> Path:
    """headstart's own folder for Ultralytics' settings (``$YOLO_CONFIG_DIR`` when the user set it)."""
    env = os.environ.get("YOLO_CONFIG_DIR")
    if env:
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "headstart" / "ultralytics"


def _link_fonts(folder: Path) -> None:
    """``Arial.ttf`` and ``Arial.Unicode.ttf`` in Ultralytics' config folder, as links to
    matplotlib's DejaVu Sans (Ultralytics' dataset check downloads them when absent)."""
    import matplotlib

    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    target = folder / "Ultralytics"  # Ultralytics puts its files in <YOLO_CONFIG_DIR>/Ultralytics
    target.mkdir(parents=True, exist_ok=True)
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        link = target / name
        if not link.exists() and font.is_file():
            try:
                link.unlink(missing_ok=True)  # a dangling link
                link.symlink_to(font)
            except OSError:  # no symlinks (some Windows setups): the font check then fails offline, quietly
                pass


def load_ultralytics() -> ModuleType:
    """``import ultralytics`` with the offline, quiet environment; a clear message naming the
    ``yolo`` extra (and its licence) when it is not installed."""
    from headstart._imports import missing_modules, optional_import

    if "ultralytics" not in sys.modules and not missing_modules(["ultralytics"]):
        folder = ultralytics_config_dir()
        os.environ.setdefault("YOLO_CONFIG_DIR", str(folder))
        os.environ.setdefault("YOLO_OFFLINE", "1")
        os.environ.setdefault("YOLO_AUTOINSTALL", "false")
        os.environ.setdefault("YOLO_VERBOSE", "false")
        try:
            _link_fonts(folder)
        except (OSError, ImportError):
            pass
    module = optional_import("ultralytics", extra="yolo", feature="A YOLO detector", hint=INSTALL_HINT)
    _undo_global_patches()
    from ultralytics.utils import SETTINGS

    changed = {k: v for k, v in OFF_SETTINGS.items() if k in SETTINGS and SETTINGS[k] != v}
    if changed:
        SETTINGS.update(changed)
    return module


def _undo_global_patches() -> None:
    """Put back what importing Ultralytics replaces process-wide: ``PIL.Image.open`` (its version
    tries to pip-install pi-heif on a file Pillow cannot identify and then raises
    ModuleNotFoundError instead of ``UnidentifiedImageError``, which broke headstart's "unreadable
    image: skipped" handling in the same process) and ``torch.save``. Ultralytics keeps the
    originals in ``ultralytics.utils.patches`` (``_image_open``, ``_torch_save``); its own code keeps
    working with them (it loses only HEIC decoding). Imported here, so the module-level patch has run
    once and will not run again after we undo it."""
    import importlib

    import torch
    from PIL import Image

    patches = importlib.import_module("ultralytics.utils.patches")
    original_open = getattr(patches, "_image_open", None)
    if original_open is not None and Image.open is getattr(patches, "image_open", None):
        Image.open = original_open
    original_save = getattr(patches, "_torch_save", None)
    if (
        original_save is not None
        and torch.save is not original_save
        and getattr(torch.save, "__module__", "").startswith("ultralytics")
    ):
        torch.save = original_save
