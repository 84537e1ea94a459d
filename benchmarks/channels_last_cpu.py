"""channels_last against the default (contiguous) memory format on the CPU: training step and
inference batch times of timm classifiers and a torchvision FCOS detector, one thread.

What ``DeviceSettings.for_model`` (``headstart.engine.device``) is based on: channels_last goes on
for CPU training of models without LayerNorm.

    OMP_NUM_THREADS=1 python benchmarks/channels_last_cpu.py [--results benchmarks/results/channels_last_cpu.json]

Per model: CPU seconds (process time) per training step (forward, backward, AdamW step) and per
inference batch, the median of ``--repeats`` timed steps after two warm-up steps.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

CLASSIFIERS = [("mobilenetv2_100", 96), ("mobilenetv2_100", 224), ("tf_efficientnet_lite0", 96),
               ("tf_efficientnet_lite0", 224), ("resnet50", 96), ("resnet50", 224), ("resnet18", 160),
               ("vgg16", 96), ("convnext_tiny", 96), ("vit_tiny_patch16_224", 224)]


def _timed(fn, repeats: int) -> float:
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return statistics.median(times)


def _compare(row: dict, build, loss_fn, eval_fn, repeats: int) -> dict:
    """Times a training step (``loss_fn(model, fmt)``, backward, AdamW) and an inference pass
    (``eval_fn(model, fmt)``) of a fresh ``build()`` in each memory format ``fmt``; fills ``row``."""
    for fmt in ("contiguous", "channels_last"):
        torch.manual_seed(0)
        model = build()
        if fmt == "channels_last":
            model = model.to(memory_format=torch.channels_last)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], 1e-4)

        def step(model=model, fmt=fmt, opt=opt):
            loss = loss_fn(model, fmt)
            opt.zero_grad()
            loss.backward()
            opt.step()

        model.train()
        row[f"train_s_{fmt}"] = round(_timed(step, repeats), 4)
        model.eval()
        with torch.no_grad():
            row[f"eval_s_{fmt}"] = round(_timed(lambda model=model, fmt=fmt: eval_fn(model, fmt), repeats), 4)
    row["train_speedup"] = round(row["train_s_contiguous"] / row["train_s_channels_last"], 2)
    row["eval_speedup"] = round(row["eval_s_contiguous"] / row["eval_s_channels_last"], 2)
    row["has_layernorm"] = any(isinstance(m, torch.nn.LayerNorm) for m in model.modules())
    return row


def classifier(name: str, size: int, batch: int, repeats: int) -> dict:
    import timm

    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 10, (batch,))
    # the batch in the model's memory format, as DeviceSettings.to_device gives it
    inputs = {"contiguous": x, "channels_last": x.contiguous(memory_format=torch.channels_last)}
    return _compare({"model": name, "image_size": size, "batch": batch},
                    lambda: timm.create_model(name, num_classes=10),
                    lambda m, fmt: torch.nn.functional.cross_entropy(m(inputs[fmt]), y),
                    lambda m, fmt: m(inputs[fmt]), repeats)


def detector(size: int, repeats: int) -> dict:
    from headstart.tasks.detection.models import DetectorSpec, create_detector

    spec = DetectorSpec("fcos", "mobilenetv2_100", 5, size, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
                        fpn_channels=128)
    images = [torch.rand(3, size, size) for _ in range(4)]
    targets = [{"boxes": torch.tensor([[10.0, 10.0, 60.0, 60.0], [100.0, 100.0, 140.0, 150.0]]),
                "labels": torch.tensor([1, 2])} for _ in range(4)]
    return _compare({"model": "fcos on mobilenetv2_100 (torchvision FPN)", "image_size": size, "batch": 4},
                    lambda: create_detector(spec), lambda m, fmt: sum(m(images, targets).values()),
                    lambda m, fmt: m(images), repeats)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--results", type=Path)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for name, size in CLASSIFIERS:
        rows.append(classifier(name, size, args.batch, args.repeats))
        print(json.dumps(rows[-1]), flush=True)
    rows.append(detector(320, args.repeats))
    print(json.dumps(rows[-1]), flush=True)
    out = {"machine": f"{platform.machine()} {platform.processor() or ''}, 1 torch thread, torch {torch.__version__}",
           "rows": rows}
    if args.results:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
