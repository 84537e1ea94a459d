"""What a detection dataset holds: images and boxes per split and class, background images, and how
big the boxes are -- in COCO's sense on the original pixels, and at the size a detector will see.

Box size matters more in detection than anything else in the summary: a box whose shorter side is a
few pixels once the image is resized to the model's input is close to undetectable, and COCO's
small/medium/large split (area below 32², below 96², above) tells which AP to watch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from headstart.data.detection.problems import Problem, count_problems, format_problems

__all__ = ["DetectionSummary", "size_bucket", "SIZE_BUCKETS", "COCO_SMALL_AREA", "COCO_MEDIUM_AREA", "TINY_SIDE"]

COCO_SMALL_AREA = 32**2
COCO_MEDIUM_AREA = 96**2
SIZE_BUCKETS = ("small", "medium", "large")
TINY_SIDE = 8
"""A box whose shorter side is below this many pixels at the input size is counted as tiny."""

_SHOWN = 10


def size_bucket(area: float) -> str:
    """``'small'`` (area < 32²), ``'medium'`` (< 96²) or ``'large'``, as COCO's evaluation does."""
    if area < COCO_SMALL_AREA:
        return "small"
    if area < COCO_MEDIUM_AREA:
        return "medium"
    return "large"


def _zero(names: Sequence[str]) -> dict[str, int]:
    return {n: 0 for n in names}


@dataclass
class DetectionSummary:
    """Counts per split (``images['train']['cat']`` = train images with a cat box) and the problems
    and notes of the load. Boxes marked ``ignore`` are counted only in ``ignored``."""

    root: Path
    layout: str
    classes: list[str]
    images: dict[str, dict[str, int]]
    boxes: dict[str, dict[str, int]]
    num_images: dict[str, int]
    negatives: dict[str, int]
    """Images without any box, per split."""
    ignored: dict[str, int]
    sizes: dict[str, dict[str, int]]
    """Boxes per COCO size bucket (small/medium/large) on the original pixels, per split."""
    input_size: int | None = None
    sizes_at_input: dict[str, dict[str, int]] | None = None
    """Boxes per size bucket once the image is resized so its longer side is ``input_size``."""
    tiny_at_input: dict[str, int] | None = None
    """Boxes whose shorter side is below :data:`TINY_SIDE` px at ``input_size``."""
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_splits(
        cls,
        *,
        root: Path,
        layout: str,
        classes: Sequence[str],
        splits: Mapping[str, Sequence],
        problems: Sequence[Problem] = (),
        notes: Sequence[str] = (),
        input_size: int | None = None,
    ) -> DetectionSummary:
        """Count the :class:`~headstart.data.detection.samples.BoxSample` lists of ``splits``."""
        classes = list(classes)
        images, boxes, num_images, negatives, ignored, sizes = {}, {}, {}, {}, {}, {}
        at_input: dict[str, dict[str, int]] = {}
        tiny: dict[str, int] = {}
        for split, samples in splits.items():
            images[split], boxes[split] = _zero(classes), _zero(classes)
            sizes[split], at_input[split] = _zero(SIZE_BUCKETS), _zero(SIZE_BUCKETS)
            num_images[split], negatives[split], ignored[split], tiny[split] = len(samples), 0, 0, 0
            for s in samples:
                negatives[split] += not s.boxes
                scale = input_size / max(s.width, s.height) if input_size else 1.0
                seen = set()
                for (x1, y1, x2, y2), label, ign in zip(s.boxes, s.labels, s.ignore):
                    if ign:
                        ignored[split] += 1
                        continue
                    name = classes[label]
                    boxes[split][name] += 1
                    seen.add(name)
                    w, h = x2 - x1, y2 - y1
                    sizes[split][size_bucket(w * h)] += 1
                    if input_size:
                        at_input[split][size_bucket(w * h * scale * scale)] += 1
                        tiny[split] += min(w, h) * scale < TINY_SIDE
                for name in seen:
                    images[split][name] += 1
        return cls(
            root=Path(root),
            layout=layout,
            classes=classes,
            images=images,
            boxes=boxes,
            num_images=num_images,
            negatives=negatives,
            ignored=ignored,
            sizes=sizes,
            input_size=input_size,
            sizes_at_input=at_input if input_size else None,
            tiny_at_input=tiny if input_size else None,
            problems=list(problems),
            notes=list(notes),
        )

    @property
    def num_boxes(self) -> dict[str, int]:
        return {split: sum(per.values()) for split, per in self.boxes.items()}

    def to_dict(self) -> dict:
        """JSON-ready form, for run reports."""
        return {
            "root": str(self.root),
            "layout": self.layout,
            "classes": list(self.classes),
            "images": {s: dict(v) for s, v in self.images.items()},
            "boxes": {s: dict(v) for s, v in self.boxes.items()},
            "num_images": dict(self.num_images),
            "num_boxes": self.num_boxes,
            "negatives": dict(self.negatives),
            "ignored": dict(self.ignored),
            "sizes": {s: dict(v) for s, v in self.sizes.items()},
            "input_size": self.input_size,
            "sizes_at_input": None if self.sizes_at_input is None else {s: dict(v) for s, v in self.sizes_at_input.items()},
            "tiny_at_input": None if self.tiny_at_input is None else dict(self.tiny_at_input),
            "problems": [p.to_dict() for p in self.problems],
            "notes": list(self.notes),
        }

    def _table(self) -> list[str]:
        splits = list(self.images)
        first = max([len("images without boxes"), len("ignored boxes")] + [len(c) for c in self.classes])
        cell = 7

        def row(label: str, cells: list[str]) -> str:
            return "  ".join([label.ljust(first)] + [c.rjust(cell) for c in cells])

        header1 = "  ".join([" " * first] + [s.center(2 * cell + 2) for s in splits])
        header2 = row("class", [x for _ in splits for x in ("images", "boxes")])
        lines = [header1.rstrip(), header2, "-" * len(header2)]
        for c in self.classes:
            lines.append(row(c, [str(x) for s in splits for x in (self.images[s][c], self.boxes[s][c])]))
        lines.append("-" * len(header2))
        lines.append(row("total", [str(x) for s in splits for x in (self.num_images[s], self.num_boxes[s])]))
        lines.append(row("images without boxes", [x for s in splits for x in (str(self.negatives[s]), "")]).rstrip())
        if any(self.ignored.values()):
            lines.append(row("ignored boxes", [x for s in splits for x in ("", str(self.ignored[s]))]).rstrip())
        return lines

    def _sizes(self) -> list[str]:
        lines = ["Box sizes (COCO: small < 32², medium < 96², large; original pixels):"]
        for s, per in self.sizes.items():
            lines.append(f"  {s}: " + ", ".join(f"{per[b]} {b}" for b in SIZE_BUCKETS))
        if self.input_size and self.sizes_at_input is not None and self.tiny_at_input is not None:
            lines.append(
                f"Box sizes at input size {self.input_size} (each image resized so its longer side is"
                f" {self.input_size}):"
            )
            for s, per in self.sizes_at_input.items():
                lines.append(
                    f"  {s}: " + ", ".join(f"{per[b]} {b}" for b in SIZE_BUCKETS)
                    + f"; {self.tiny_at_input[s]} with the shorter side below {TINY_SIDE} px"
                )
        return lines

    def format(self, max_problems: int = _SHOWN) -> str:
        """A plain-text table of images and boxes per class and split, the box sizes, then the
        problems (the first ``max_problems``) and notes."""
        head = (
            f"Detection dataset {self.root} ({self.layout}): {len(self.classes)} classes, "
            + ", ".join(f"{self.num_images[s]} {s} images ({self.num_boxes[s]} boxes)" for s in self.images)
        )
        lines = [head, *self._table(), *self._sizes()]
        if self.problems:
            counts = ", ".join(f"{n} {a}" for a, n in count_problems(self.problems).items())
            lines.append(f"{len(self.problems)} problem(s) in the annotations ({counts}):")
            lines.append(format_problems(self.problems, max_problems))
        for note in self.notes:
            lines.append(f"Note: {note}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()
