"""Regenerate examples/glyphs/: a small object-detection dataset built from real photos (COCO layout).

Digits 0-4 rendered with Debian's DejaVu fonts, composited with exact boxes onto crops of
scikit-image's sample photos; train and val backgrounds come from one set of photos, test
backgrounds from a disjoint set. The generator is ``make_dataset`` in
``benchmarks/detection_data.py`` (the detection benchmark's, with fewer and smaller images).

    python examples/make_detection.py [--out examples/glyphs]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = dict(n_train=60, n_val=20, n_test=20, image_size=256, seed=0, max_objects=6, negative_fraction=0.08,
                image_format="jpg")

README = """\
# glyphs: a small detection dataset from real photos

{n_train} train, {n_val} val and {n_test} test images, {image_size}x{image_size} JPEG, in COCO layout
(`annotations/instances_{{train,val,test}}.json`, `train/`, `val/`, `test/`). Each image is a random
crop of one of scikit-image's sample photos with 1-{max_objects} digits (classes `zero` to `four`)
composited onto it at exact positions; {negatives} of the images have no digit. A box is the tight
box of the pixels its digit changes before JPEG compression (`bbox` is `[x, y, w, h]`, `area` is
`w*h`). Train and val
backgrounds come from one set of photos and test backgrounds from a disjoint set, so the test score
measures transfer to unseen scenes, not memory of the backgrounds.

{table}

Regenerate (deterministic; needs scikit-image and Debian's `fonts-dejavu-core`):

    python examples/make_detection.py

The generator is `make_dataset` in `benchmarks/detection_data.py`, which also builds the larger
detection benchmark set.

## Sources and licences

Backgrounds: photos bundled with scikit-image (`skimage.data`, no download). `skimage/data/README.txt`
states no licence; each photo's licence is the one its `skimage.data` docstring states:

{photos}

Digits: rendered with Debian's DejaVu fonts (Sans, Sans Mono and Serif, regular and bold): Bitstream
Vera licence, DejaVu changes in the public domain (`/usr/share/doc/fonts-dejavu-core/copyright`). The
images hold renderings of the glyphs, not the font software.
"""


def _table(stats: dict) -> str:
    rows = ["| split | images | no digit | boxes | small | medium | large | backgrounds |", "|---" * 8 + "|"]
    for split, s in stats["splits"].items():
        sizes = s["sizes"]
        rows.append(f"| {split} | {s['images']} | {s['negatives']} | {s['boxes']} | {sizes['small']} | "
                    f"{sizes['medium']} | {sizes['large']} | {', '.join(s['photos'])} |")
    return "\n".join(rows)


def load_generator():
    name = "headstart_benchmarks_detection_data"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / "detection_data.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up here
        spec.loader.exec_module(module)
    return sys.modules[name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "examples" / "glyphs"))
    args = parser.parse_args()
    generator = load_generator()
    try:
        stats = generator.make_dataset(args.out, **SETTINGS)
    except FileNotFoundError as exc:
        raise SystemExit(str(exc)) from None
    used = [photo for s in stats["splits"].values() for photo in s["photos"]]
    photos = "\n".join(f"* {name}: {generator.PHOTO_LICENCES[name]}" for name in dict.fromkeys(used))
    negatives = sum(s["negatives"] for s in stats["splits"].values())
    readme = README.format(**SETTINGS, negatives=f"{negatives} ({SETTINGS['negative_fraction']:.0%})",
                           table=_table(stats), photos=photos)
    (Path(args.out) / "README.md").write_text(readme)
    print(f"wrote {args.out}")
    print(generator.format_summary(stats))


if __name__ == "__main__":
    main()
