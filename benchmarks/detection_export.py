"""ONNX export parity of detectors with a real backbone: each detector trained briefly on
examples/glyphs with mobilenetv2_100's ImageNet weights, exported, and checked (boxes matched to
PyTorch's by IoU, the export's mAP on the test split against the run's).

    python benchmarks/detection_export.py [--detectors fcos:3,fasterrcnn:1,retinanet:1] [--out runs/bench-det-export]
                                          [--results benchmarks/results/detection_export.json]

``DETECTOR:EPOCHS`` per entry (fine-tuning epochs after one head epoch). Needs the real weights
(``headstart weights fetch mobilenetv2_100``). Prints wall and CPU seconds (the machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GLYPHS = REPO / "examples" / "glyphs"


def main(argv=None) -> int:
    import torch

    import headstart
    from headstart.export import export_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--detectors", default="fcos:3,fasterrcnn:1,retinanet:1")
    p.add_argument("--out", type=Path, default=REPO / "runs" / "bench-det-export")
    p.add_argument("--results", type=Path)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for entry in args.detectors.split(","):
        detector, epochs = entry.split(":")
        run = args.out / detector
        t0, c0 = time.perf_counter(), time.process_time()
        fit = headstart.fit(
            GLYPHS,
            model="mobilenetv2_100",
            epochs=int(epochs),
            device="cpu",
            verbose=False,
            seed=0,
            out=run,
            overrides=[f"detect.detector={detector}", "detect.head_epochs=1"],
        )
        fit_wall, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        result = export_model(run, "onnx")
        r = result.parity
        rows.append(
            {
                "detector": detector,
                "epochs": int(epochs),
                "image_size": fit.config.model.image_size,
                "run_map": r.map_run,
                "export_map": r.map_export,
                "boxes": r.n_reference_boxes,
                "matched": r.n_matched,
                "max_box_diff_px": r.max_box_diff,
                "max_score_diff": r.max_score_diff,
                "unmatched_near_floor": len(r.unmatched),
                "real_images": r.n_real,
                "size_mb": round(result.path.stat().st_size / 1e6, 1),
                "fit_wall_s": round(fit_wall, 1),
                "fit_cpu_s": round(fit_cpu, 1),
                "export_wall_s": round(time.perf_counter() - t0, 1),
                "export_cpu_s": round(time.process_time() - c0, 1),
            }
        )
        print(result.summary(), flush=True)
    print(
        "\n| detector | epochs | run mAP | export mAP | boxes matched | max dbox px | max dscore | export s (wall / CPU) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['detector']} | 1 + {r['epochs']} | {r['run_map']:.4f} | {r['export_map']:.4f} |"
            f" {r['matched']}/{r['boxes']} | {r['max_box_diff_px']:.1e} | {r['max_score_diff']:.1e} |"
            f" {r['export_wall_s']} / {r['export_cpu_s']} |"
        )
    if args.results:
        record = {
            "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *(argv or sys.argv[1:])]),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "torch_threads": 1,
            "torch": torch.__version__,
            "rows": rows,
        }
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
