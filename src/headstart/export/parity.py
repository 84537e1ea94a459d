"""The check every export passes before it is reported done: the exported model against the
PyTorch model, on real images from the run's split and on random images, probabilities compared
element-wise. The inputs run as one batch and as single images, which also checks that the
exported batch dimension is really dynamic."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from headstart.errors import HeadstartError

__all__ = ["ParityError", "ParityReport", "ExportResult", "parity_inputs", "check_parity", "DEFAULT_TOLERANCE"]

DEFAULT_TOLERANCE = 1e-4
"""Largest allowed absolute difference of any probability between the export and PyTorch."""


class ParityError(HeadstartError, RuntimeError):
    """An exported model does not compute what the PyTorch model computes."""


@dataclass(frozen=True)
class ParityReport:
    n_real: int
    n_random: int
    max_abs_diff_real: float
    max_abs_diff_random: float
    top1_agreement: float
    tolerance: float
    real_source: str = ""

    @property
    def max_abs_diff(self) -> float:
        return max(self.max_abs_diff_real, self.max_abs_diff_random)

    @property
    def ok(self) -> bool:
        return bool(self.max_abs_diff < self.tolerance)

    def summary(self) -> str:
        return (f"parity with PyTorch: max |dprob| {self.max_abs_diff_real:.2e} on {self.n_real} real image(s)"
                f"{f' ({self.real_source})' if self.real_source else ''}, {self.max_abs_diff_random:.2e} on"
                f" {self.n_random} random image(s); top-1 agreement {self.top1_agreement:.0%}"
                f" (tolerance {self.tolerance:.0e})")


@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: str
    parity: ParityReport
    metadata: dict = field(repr=False)
    extra_files: tuple[Path, ...] = ()
    seconds: float = 0.0

    def summary(self) -> str:
        size = self.path.stat().st_size / 1e6
        return f"{self.format} export: {self.path} ({size:.1f} MB, {self.seconds:.1f} s)\n{self.parity.summary()}"


def _split_images(run_path: Path, limit: int) -> list[Path]:
    """Up to ``limit`` existing images of the run's split.json, test split first."""
    split = run_path / "split.json"
    if not split.is_file():
        return []
    try:
        record = json.loads(split.read_text(encoding="utf-8"))
        root, splits = Path(record["root"]), record["splits"]
    except (ValueError, KeyError, TypeError):
        return []
    found: list[Path] = []
    for name in ("test", "val", "train"):
        for rel, _label in splits.get(name, []):
            path = Path(rel) if Path(rel).is_absolute() else root / rel
            if path.is_file():
                found.append(path)
            if len(found) >= limit:
                return found
    return found


def parity_inputs(run_path: str | Path, pre, images: Sequence[str | Path] | None = None, *, max_real: int = 8,
                  n_random: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """``(real, random, source)``: uint8 batches ``(N, 3, S, S)``. Real images are ``images`` when
    given, else up to ``max_real`` from the run's split.json (the dataset may have moved: then only
    random images are used, and ``source`` says so)."""
    from headstart.errors import DataError
    from headstart.export.preprocess import load_image_array
    from headstart.predict import expand_inputs

    if images:
        paths, source = expand_inputs(images)[:max_real], "given images"
    else:
        paths, source = _split_images(Path(run_path), max_real), "from split.json"
    arrays = []
    for path in paths:
        try:
            arrays.append(load_image_array(path, pre))
        except (DataError, OSError):
            continue
    if not arrays:
        source = "none found: the run's dataset is not at its recorded place"
    size = pre.input_size
    real = np.stack(arrays) if arrays else np.zeros((0, 3, size, size), np.uint8)
    rng = np.random.default_rng(seed)
    random = rng.integers(0, 256, size=(n_random, 3, size, size), dtype=np.uint8)
    return real, random, source


Runner = Callable[[np.ndarray], np.ndarray]


def _max_diff(reference: Runner, candidate: Runner, batch: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    if len(batch) == 0:
        return 0.0, np.zeros((0,)), np.zeros((0,))
    ref, got = np.asarray(reference(batch)), np.asarray(candidate(batch))
    if ref.shape != got.shape:
        raise ParityError(f"The exported model returns shape {got.shape} where PyTorch returns {ref.shape}.")
    diff = float(np.abs(ref.astype(np.float64) - got.astype(np.float64)).max())
    # one image alone: a batch dimension frozen at export time fails here
    single = np.asarray(candidate(batch[:1]))
    diff = max(diff, float(np.abs(ref[:1].astype(np.float64) - single.astype(np.float64)).max()))
    return diff, ref.argmax(1), got.argmax(1)


def check_parity(reference: Runner, candidate: Runner, real: np.ndarray, random: np.ndarray, *,
                 tolerance: float = DEFAULT_TOLERANCE, source: str = "") -> ParityReport:
    d_real, ref_top, got_top = _max_diff(reference, candidate, real)
    d_rand, ref_top2, got_top2 = _max_diff(reference, candidate, random)
    tops = np.concatenate([ref_top, ref_top2]) == np.concatenate([got_top, got_top2])
    return ParityReport(
        n_real=len(real), n_random=len(random), max_abs_diff_real=d_real, max_abs_diff_random=d_rand,
        top1_agreement=float(tops.mean()) if tops.size else 1.0, tolerance=tolerance, real_source=source,
    )


def check_against_model(wrapped, candidate: Runner, run_path: str | Path, pre, images=None, *,
                        tolerance: float = DEFAULT_TOLERANCE) -> ParityReport:
    """:func:`check_parity` of an exported ``candidate`` against the PyTorch model ``wrapped`` (uint8
    batch in, probabilities out) on the run's own images and random ones (:func:`parity_inputs`)."""
    import torch

    def reference(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return wrapped(torch.from_numpy(batch)).numpy()

    real, random, source = parity_inputs(run_path, pre, images)
    return check_parity(reference, candidate, real, random, tolerance=tolerance, source=source)


def verify_or_remove(report: ParityReport, path: Path, fmt: str, target: Path) -> None:
    """Raise :class:`ParityError` (after deleting ``path``, the file under test that would have become
    ``target``) when the check failed."""
    if report.ok and np.isfinite(report.max_abs_diff):
        return
    Path(path).unlink(missing_ok=True)
    raise ParityError(
        f"The {fmt} export failed its check against PyTorch and was removed ({target.name}): {report.summary()}."
        " This is a bug in the exporter for this architecture; please report it with the model name. Serve the"
        " run folder directly (headstart serve RUN) or try the other format."
    )
