"""What the local image score and illumination removal cost in scoring: images per second of
``GradCon.score`` (batch 64, untrained weights with random reference gradients; the cost does
not depend on the weights) at each working size, the paper's mean score against the local one,
without and with illumination removal.

    python research/investigations/local_score_cost.py --sizes 64 128 256 --images 256
"""

import argparse
import sys
import time

import numpy as np


def throughput(size, images, repeats, **options):
    import gradcon_tf

    model = gradcon_tf.GradCon(input_shape=(size, size, 1), **options)
    rng = np.random.default_rng(0)
    for reference in model.reference_gradients:
        reference.assign(rng.normal(size=reference.shape).astype(np.float32))
    batch = rng.integers(0, 256, size=(images, size, size, 1), dtype=np.uint8)
    model.score(batch[:64], batch_size=64)  # trace
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        model.score(batch, batch_size=64)
        best = min(best, time.perf_counter() - started)
    return images / best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[64, 128, 256])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    variants = {
        "mean": {}, "local": {"image_score": "local"},
        "mean, illumination removed": {"remove_illumination": True},
        "local, illumination removed": {"image_score": "local", "remove_illumination": True},
    }
    print("| working size | " + " | ".join(variants) + " |")
    print("|---" * (1 + len(variants)) + "|")
    for size in args.sizes:
        rates = [throughput(size, args.images, args.repeats, **v) for v in variants.values()]
        print(f"| {size} | " + " | ".join(f"{r:.0f} img/s" for r in rates) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
