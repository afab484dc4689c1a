"""Feature-extraction throughput of every encoder of a profile, side by side in one run.

    python benchmarks/bench_features.py [--profile mini] [--images 1024] [--batch-size 256]

Prints images per second per encoder on the reference task's first images (cache off), and each
encoder's speed relative to the slowest one. Measurements, not tests: the machine is shared.
"""
import argparse
import time

import pandas as pd

from taskrel_utils.inputs import data, encoders, features
from taskrel_utils.study import config


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="mini")
    ap.add_argument("--images", type=int, default=1024)
    ap.add_argument("--batch-size", type=int, default=256)
    args = ap.parse_args()
    cfg = config.load_profile(args.profile)
    task = data.load_task(cfg.reference, "train")
    task = task.subset(range(min(args.images, len(task))))
    rows = []
    for name in cfg.encoders:
        enc = encoders.load_encoder(name, progress=False, **({"image_size": cfg.image_size} if cfg.image_size else {}))
        features.extract_features(enc, task.subset(range(args.batch_size)), cache=False, progress=False)  # warm-up
        start = time.perf_counter()
        features.extract_features(enc, task, batch_size=args.batch_size, cache=False, progress=False)
        seconds = time.perf_counter() - start
        rows.append({"encoder": name, "input": enc.preprocess.description, "images": len(task),
                     "seconds": round(seconds, 2), "images_per_second": round(len(task) / seconds, 1)})
    table = pd.DataFrame(rows)
    table["x_slowest"] = (table.images_per_second / table.images_per_second.min()).round(1)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
