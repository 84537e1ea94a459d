"""Training and feature-extraction throughput: headstart against a plain PyTorch loop.

Same model, batch size, resolution, optimiser and thread count. The plain loop is what a user
writes by hand: torchvision's ImageFolder with timm's ``create_transform`` (decodes every epoch),
AdamW, ``model(x)``, ``loss.backward()``, ``step()``. A second plain variant reads pre-decoded
tensors from memory with no augmentation: the upper bound of what any loop can do on this model.

The images are real photos: random crops of scikit-image's sample photos, written to a temporary
folder (4 classes, one photo each).

    python benchmarks/throughput.py [--model mobilenetv2_100] [--size 160] [--batch 32] [--images 256] [--epochs 3]
    python benchmarks/throughput.py --device cuda --size 224 --batch 128 --images 4096 --epochs 4

On CUDA the plain loop is the one a careful GPU user writes: DataLoader workers with pinned memory,
bf16 autocast and channels_last. headstart runs with its defaults (AMP, channels_last, workers) and
once more with AMP and channels_last turned off, and with no workers, to show what each is worth.

Prints a JSON summary (also written to benchmarks/results/throughput[-cuda].json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")


def make_dataset(root: Path, n_images: int, seed: int = 0) -> Path:
    import skimage.data

    rng = np.random.default_rng(seed)
    per_class = n_images // len(PHOTOS)
    for name in PHOTOS:
        photo = getattr(skimage.data, name)()
        h, w = photo.shape[:2]
        for i in range(per_class):
            side = int(rng.integers(min(h, w) // 2, min(h, w)))
            y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            crop = Image.fromarray(photo[y : y + side, x : x + side]).resize((256, 256), Image.BICUBIC)
            path = root / name / f"{name}_{i:04d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            crop.save(path, quality=90)
    return root


def _timed_epochs(run_epoch, epochs: int) -> list[float]:
    rates = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        n = run_epoch()
        rates.append(n / (time.perf_counter() - t0))
    return rates


def plain_loop(data: Path, model_name: str, size: int, batch: int, epochs: int, device: str = "cpu",
               workers: int = 0) -> dict:
    import contextlib

    import timm
    import torch
    from timm.data import create_transform, resolve_data_config
    from torchvision.datasets import ImageFolder

    torch.manual_seed(0)
    cuda = device == "cuda"
    fmt = torch.channels_last if cuda else torch.contiguous_format
    model = timm.create_model(model_name, pretrained=False, num_classes=len(PHOTOS)).to(device, memory_format=fmt)
    cfg = resolve_data_config({"input_size": (3, size, size)}, model=model)
    train_ds = ImageFolder(str(data), transform=create_transform(**cfg, is_training=True, scale=(0.35, 1.0)))
    eval_ds = ImageFolder(str(data), transform=create_transform(**cfg, is_training=False))
    loader = torch.utils.data.DataLoader(train_ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                                         pin_memory=cuda, persistent_workers=workers > 0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else contextlib.nullcontext
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def to_dev(x):
        return x.to(device, non_blocking=True, memory_format=fmt)

    def train_step(x, y) -> int:
        with autocast():
            loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return len(x)

    def train_epoch() -> int:
        model.train()
        n = sum(train_step(to_dev(x), y.to(device, non_blocking=True)) for x, y in loader)
        sync()
        return n

    # the upper bound: pre-decoded tensors, no augmentation, no loader
    tensors = to_dev(torch.stack([eval_ds[i][0] for i in range(len(eval_ds))]))
    labels = torch.tensor(eval_ds.targets).to(device)

    def tensor_epoch() -> int:
        model.train()
        perm = torch.randperm(len(tensors), device=device)
        batches = (perm[i : i + batch] for i in range(0, len(perm) - batch + 1, batch))
        n = sum(train_step(tensors[idx], labels[idx]) for idx in batches)
        sync()
        return n

    eval_loader = torch.utils.data.DataLoader(eval_ds, batch_size=batch, num_workers=workers, pin_memory=cuda,
                                              persistent_workers=workers > 0)

    @torch.no_grad()
    def features_epoch() -> int:
        model.eval()
        n = 0
        for x, _ in eval_loader:
            with autocast():
                model.forward_head(model.forward_features(to_dev(x)), pre_logits=True)
            n += len(x)
        sync()
        return n

    return {
        "train_images_per_s": _timed_epochs(train_epoch, epochs),
        "train_in_memory_no_aug_images_per_s": _timed_epochs(tensor_epoch, epochs),
        "features_images_per_s": _timed_epochs(features_epoch, epochs),
    }


def headstart_loop(data: Path, model_name: str, size: int, batch: int, epochs: int, out: Path, device: str = "cpu",
                   overrides: tuple[str, ...] = (), features: bool = True, **flat) -> dict:
    import torch

    import headstart
    from headstart.config import DataConfig
    from headstart.data.dataset import ImageCache, ImageDataset, create_loader, default_num_workers, warm
    from headstart.data.index import load_dataset
    from headstart.data.transforms import Preprocessing, build_eval_transform
    from headstart.engine.device import resolve_device
    from headstart.models.build import create_model
    from headstart.tasks.classification.features import extract_features

    result = headstart.fit(
        data, model=model_name, pretrained=False, strategy="full", epochs=epochs, image_size=size,
        batch_size=batch, augment="light", val_fraction=0.05, test_fraction=0.0, patience=100,
        device=device, verbose=False, out=out / "fit", overrides=list(overrides), **flat,
    )
    train_rates = [row["images_per_s"] for row in result.history]
    if not features:
        return {"train_images_per_s": train_rates, "config": {"overrides": list(overrides), **flat}}

    # feature extraction as rank and the linear probe do it: cached decoded images, eval transform
    index = load_dataset(DataConfig(path=data, val_fraction=0.05, test_fraction=0.0), seed=0)
    model = create_model(model_name, len(index.classes), weights=None)
    pre = Preprocessing.from_model(model, size)
    samples = [s for split in index.splits.values() for s in split]
    ds = ImageDataset(samples, pre, build_eval_transform(pre), ImageCache("memory"))
    t0 = time.perf_counter()
    warm([ds], progress=False)
    warm_s = time.perf_counter() - t0
    dev = resolve_device(device)
    model = model.to(dev.device)
    if dev.channels_last:
        model = model.to(memory_format=torch.channels_last)
    workers = flat.get("num_workers") or (default_num_workers(device) if dev.is_cuda else 0)

    def features_epoch() -> int:
        loader = create_loader(ds, batch, shuffle=False, seed=0, num_workers=workers, pin_memory=dev.is_cuda)
        feats, _ = extract_features(model, loader, dev)
        return len(feats)

    torch.set_grad_enabled(True)
    return {
        "train_images_per_s": train_rates,
        "features_images_per_s": _timed_epochs(features_epoch, epochs),
        "cache_warm_seconds": warm_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenetv2_100")
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--workers", type=int, default=8, help="DataLoader workers of the plain loop on CUDA")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    cuda = args.device == "cuda"
    variants = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = make_dataset(Path(tmp) / "photos", args.images)
        common = (data, args.model, args.size, args.batch, args.epochs)
        plain = plain_loop(*common, device=args.device, workers=args.workers if cuda else 0)
        ours = headstart_loop(*common, Path(tmp) / "a", device=args.device)
        if cuda:  # what AMP + channels_last and the workers are worth inside headstart
            variants["fp32, no channels_last"] = headstart_loop(
                *common, Path(tmp) / "b", device="cuda", overrides=("train.amp=false", "train.channels_last=false"),
                features=False)
            variants["no DataLoader workers"] = headstart_loop(*common, Path(tmp) / "c", device="cuda", num_workers=0,
                                                               features=False)

    # epoch 1 of headstart includes nothing extra (the cache is warmed before training), but
    # we report the median of the epochs after the first for both, to skip warm-up effects
    med = lambda xs: float(np.median(xs[1:] if len(xs) > 1 else xs))  # noqa: E731
    gpu = torch.cuda.get_device_name(0) if cuda else None
    summary = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch threads {args.threads}"
        + (f", {gpu}" if gpu else ""),
        "torch": torch.__version__, "device": args.device,
        "model": args.model, "size": args.size, "batch": args.batch, "images": args.images,
        "plain": plain, "headstart": ours, "headstart_variants": variants,
        "train_ratio_vs_plain": med(ours["train_images_per_s"]) / med(plain["train_images_per_s"]),
        "train_ratio_vs_in_memory": med(ours["train_images_per_s"]) / med(plain["train_in_memory_no_aug_images_per_s"]),
        "features_ratio_vs_plain": med(ours["features_images_per_s"]) / med(plain["features_images_per_s"]),
        "medians": {"plain_train": med(plain["train_images_per_s"]),
                    "plain_in_memory": med(plain["train_in_memory_no_aug_images_per_s"]),
                    "plain_features": med(plain["features_images_per_s"]),
                    "headstart_train": med(ours["train_images_per_s"]),
                    "headstart_features": med(ours["features_images_per_s"]),
                    **{f"headstart_train[{k}]": med(v["train_images_per_s"]) for k, v in variants.items()}},
    }
    text = json.dumps(summary, indent=2)
    print(text)
    name = "throughput-cuda.json" if cuda else "throughput.json"
    out = Path(os.environ.get("OUT", Path(__file__).parent / "results")) / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")


if __name__ == "__main__":
    main()
