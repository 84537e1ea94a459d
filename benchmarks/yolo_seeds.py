"""The spread of a YOLO fit over seeds, and whether two versions of headstart's code differ by more
than it: each (version, seed) trains yolo11n from its YAML on the glyphs-on-photos set
(benchmarks/detection_data.py) in its own process, with ``PYTHONPATH`` at that version's ``src``,
and is scored by headstart's COCO evaluation on the test split. Then a two-sided Mann-Whitney U
test (scipy) of the test mAPs of the first two versions.

    python benchmarks/detection_data.py --out /tmp/detsmall --n-train 240 --n-val 60 --n-test 120 --image-size 256
    python benchmarks/yolo_seeds.py --data /tmp/detsmall --version perm=src --version rand=/tmp/hs_rand/src \\
        --seeds 1 2 3 4 5 [--epochs 28] [--image-size 256] [--jobs 2] [--results FILE.json]

A version is NAME=PATH (a checkout's ``src``; ``src`` is this one). ``--jobs``: processes at once, one
thread each (at most the cores, so that CPU seconds of runs made side by side compare). A run whose
row is already in ``--out`` is not run again.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _one(data: Path, out: Path, seed: int, epochs: int, image_size: int) -> None:
    """Run in the child process: one fit, its row written to ``out``/row.json."""
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(HERE))
    from yolo import timed_fit

    import headstart

    row = timed_fit(
        data, out / "run", seed=seed, detector="yolo11n", epochs=epochs, image_size=image_size,
        overrides=["train.patience=null"],
    )
    row["headstart"] = str(Path(headstart.__file__).parents[1])
    (out / "row.json").write_text(json.dumps(row, indent=1) + "\n", encoding="utf-8")


def _launch(args, name: str, src: Path, seed: int) -> dict:
    out = args.out / f"{name}-s{seed}-{args.image_size}"
    row_file = out / "row.json"
    if not row_file.is_file():
        env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", "YOLO_OFFLINE": "1"}
        code = (
            f"import sys; sys.path.insert(0, {str(HERE)!r}); from yolo_seeds import _one; from pathlib import Path;"
            f" _one(Path({str(args.data)!r}), Path({str(out)!r}), {seed}, {args.epochs}, {args.image_size})"
        )
        out.mkdir(parents=True, exist_ok=True)
        with open(out.with_suffix(".log"), "w") as log:
            subprocess.run([sys.executable, "-c", code], env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
    row = json.loads(row_file.read_text(encoding="utf-8"))
    row.update(version=name, seed=seed)
    print(f"{name} seed {seed}: test mAP {row['test_map']:.4f}, val {row['best_val_map']:.4f}, {row['cpu_s']} CPU s",
          flush=True)
    return row


def summary(rows: list[dict], versions: list[str]) -> dict:
    from scipy.stats import mannwhitneyu

    by = {v: [r["test_map"] for r in rows if r["version"] == v] for v in versions}
    out = {v: {"n": len(x), "mean": sum(x) / len(x), "min": min(x), "max": max(x)} for v, x in by.items() if x}
    if len(versions) >= 2 and all(by[v] for v in versions[:2]):
        a, b = versions[:2]
        test = mannwhitneyu(by[a], by[b], alternative="two-sided", method="exact")
        out["mann_whitney"] = {"versions": [a, b], "U": float(test.statistic), "p_two_sided": float(test.pvalue)}
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--version", action="append", required=True, help="NAME=PATH of a checkout's src")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--epochs", type=int, default=28)
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("/tmp/yolo-seeds"))
    ap.add_argument("--results", type=Path)
    args = ap.parse_args(argv)
    versions = []
    jobs = []
    for item in args.version:
        name, _, path = item.partition("=")
        src = (HERE.parent / path) if not Path(path).is_absolute() else Path(path)
        if not name or not (src / "headstart" / "__init__.py").is_file():
            ap.error(f"--version {item!r}: expected NAME=PATH with PATH/headstart/__init__.py")
        versions.append(name)
        jobs += [(name, src, seed) for seed in args.seeds]
    jobs.sort(key=lambda j: (j[2], j[0]))  # seed by seed, so the versions run side by side
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(lambda j: _launch(args, *j), jobs))
    import torch

    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {args.jobs} jobs x 1 thread",
        "command": "python benchmarks/yolo_seeds.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "rows": rows,
        "summary": summary(rows, versions),
    }
    print(json.dumps(result["summary"], indent=1))
    if args.results:
        sys.path.insert(0, str(HERE))
        from yolo import write_results

        write_results(args.results, result)
    return result


if __name__ == "__main__":
    main()
