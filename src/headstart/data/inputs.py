"""The image files a user names for prediction: files as given, folders expanded."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from headstart.errors import DatasetNotFoundError

__all__ = ["expand_inputs"]


def expand_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders expanded recursively to their image files (sorted)."""
    from headstart.data.decode import IMAGE_EXTENSIONS

    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(
                f for f in p.rglob("*")
                if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS and not f.name.startswith(".")
            )
            if not found:
                raise DatasetNotFoundError(f"The folder {str(p)!r} holds no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}).")
            paths.extend(found)
        elif p.is_file():
            paths.append(p)
        else:
            raise DatasetNotFoundError(f"The input {str(p)!r} does not exist. Pass image files or folders of images.")
    return paths
