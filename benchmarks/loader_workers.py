"""What persistent DataLoader workers save: one loader per epoch (workers forked and shut down
every epoch) against :class:`headstart.data.persistent.PersistentLoader` (workers kept).

Iterates a training dataset of real photos (memory cache warmed, headstart's training transform)
for ``--epochs`` epochs with no model, so the loader's own cost is all that is measured.

    python benchmarks/loader_workers.py [--images 512] [--size 64] [--workers 2] [--epochs 6]

Writes benchmarks/results/loader_workers.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> None:
    import torch
    from throughput import make_dataset

    from headstart.config import AugmentConfig
    from headstart.data.dataset import ImageCache, ImageDataset, create_loader, warm
    from headstart.data.index import Sample
    from headstart.data.persistent import PersistentLoader
    from headstart.data.transforms import Preprocessing, build_train_transform

    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "loader_workers.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = make_dataset(Path(tmp), args.images)
        classes = sorted(p.name for p in root.iterdir())
        samples = [Sample(p, c) for c, name in enumerate(classes) for p in sorted((root / name).iterdir())]
        pre = Preprocessing(args.size)
        ds = ImageDataset(samples, pre, build_train_transform(pre, AugmentConfig(), "light"), ImageCache("memory"))
        warm(ds, progress=False)

        def run(make_epoch) -> list[float]:
            times = []
            for epoch in range(args.epochs):
                t0 = time.perf_counter()
                for _ in make_epoch(epoch):
                    pass
                times.append(time.perf_counter() - t0)
            return times

        per_epoch = run(lambda e: create_loader(ds, args.batch, shuffle=True, seed=0, epoch=e, num_workers=args.workers))
        persistent = PersistentLoader(ds, args.batch, shuffle=True, num_workers=args.workers)
        kept = run(lambda e: persistent.epoch(0, e))
        persistent.close()
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "command": "python " + " ".join(sys.argv),
        "images": args.images, "size": args.size, "batch": args.batch, "workers": args.workers,
        "new_loader_each_epoch_s": [round(t, 3) for t in per_epoch],
        "persistent_s": [round(t, 3) for t in kept],
        "saved_per_epoch_after_the_first_s": round(
            (sum(per_epoch[1:]) - sum(kept[1:])) / max(1, args.epochs - 1), 3),
    }
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
