"""A worker process of ``headstart tune --workers N``: ``python -m headstart.tuning.worker RUN_DIR``.

It opens the study of RUN_DIR (its ``tune.json`` and storage) and runs trials until its quota, the
study's budget or the deadline is reached. The parent process shows the progress of all workers.
With several GPUs each worker sees one of them (:func:`headstart.tuning.gpus.worker_environment`).
"""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m headstart.tuning.worker")
    p.add_argument("run_dir")
    p.add_argument("--index", type=int, default=0, help="worker number (seeds its sampler)")
    p.add_argument("--workers", type=int, default=1, help="local workers sharing the CPU cores")
    p.add_argument("--quota", type=int, default=None, help="trials to run here at most")
    p.add_argument("--deadline", type=float, default=None, help="the study deadline (epoch seconds): no trial starts after it, a running one stops at its epoch end")
    args = p.parse_args(argv)

    import torch

    from headstart.data.dataset import usable_cores
    from headstart.errors import HeadstartError
    from headstart.tuning.study import run_worker

    torch.set_num_threads(max(1, usable_cores() // max(1, args.workers)))
    try:
        run_worker(args.run_dir, quota=args.quota, worker_index=args.index, deadline=args.deadline)
    except HeadstartError as exc:
        print(f"headstart tune worker {args.index}: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
