"""Score images with an exported GradCon LiteRT model; print scores, decisions and latency.

    python -m edge_demo --model OUT/gradcon_f32.tflite --images FOLDER [--batch-size 32] [--threads 2]
    python -m edge_demo --model OUT/gradcon_f32.tflite --images INBOX --watch --max-images 100 --timeout 60

Folder mode scores every image in FOLDER (sorted by name). Watch mode scores the images already in
the folder, then new ones as they appear, until ``--max-images`` were scored or ``--timeout`` seconds passed (write images
under a hidden or non-image name and rename them, so that no half-written file is read).
Latencies are of the LiteRT calls after one untimed warm-up call at the batch size.
Exit status: 0 all scored, 1 some images could not be scored (named on stderr), 2 bad usage.
"""

import argparse
import math
import os
import sys
import time

import numpy as np

from edge_demo.images import IMAGE_SUFFIXES, ImageError, list_images, load_image
from edge_demo.scorer import Scorer, latency_summary


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m edge_demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help=".tflite written by `python -m export`")
    parser.add_argument("--images", required=True, help="folder of images")
    parser.add_argument(
        "--batch-size", type=int, default=1, help="images per call; 1 = single-image mode (default)"
    )
    parser.add_argument("--threads", type=int, default=1, help="LiteRT CPU threads (default 1)")
    parser.add_argument(
        "--threshold", type=float, help="decision threshold (default: the one exported with the model)"
    )
    parser.add_argument(
        "--no-resize", dest="resize", action="store_false", help="reject images of the wrong size"
    )
    parser.add_argument("--watch", action="store_true", help="stream mode: score new images as they appear")
    parser.add_argument("--max-images", type=int, help="watch mode: stop after this many images")
    parser.add_argument("--timeout", type=float, default=60.0, help="watch mode: stop after this many seconds")
    parser.add_argument("--poll-interval", type=float, default=0.1, help="watch mode: seconds between polls")
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.threads < 1:
        parser.error("--batch-size and --threads must be at least 1")
    if args.max_images is not None and args.max_images < 1:
        parser.error("--max-images must be at least 1")
    return args


class Demo:
    def __init__(self, scorer, batch_size, resize, threshold):
        self.scorer = scorer
        self.batch_size = batch_size
        self.resize = resize
        self.threshold = threshold
        self.scored = 0
        self.failed = 0

    def decision(self, score, is_anomaly, threshold):
        if self.threshold is not None:
            return "ANOMALY" if score > self.threshold else "normal"
        if math.isnan(threshold):
            return "no-threshold"
        return "ANOMALY" if is_anomaly else "normal"

    def run(self, paths):
        """Decode and score ``paths`` in batches; print one line per image."""
        for start in range(0, len(paths), self.batch_size):
            batch_paths, images = [], []
            for path in paths[start : start + self.batch_size]:
                try:
                    image, note = load_image(path, self.scorer.image_shape, self.resize)
                except ImageError as error:
                    print(f"error: {error}", file=sys.stderr)
                    self.failed += 1
                    continue
                if note:
                    print(f"note: {note}", file=sys.stderr)
                batch_paths.append(path)
                images.append(image)
            if not images:
                continue
            outputs = self.scorer.score(np.stack(images))
            for index, path in enumerate(batch_paths):
                score = float(outputs["score"][index])
                decision = self.decision(score, bool(outputs["is_anomaly"][index]), float(outputs["threshold"][index]))
                print(f"{path}\tscore={score:.6f}\t{decision}", flush=True)
            self.scored += len(batch_paths)


def watch(demo, folder, max_images, timeout, poll_interval):
    """Score files appearing in ``folder`` (once their size is stable across two polls)."""
    deadline = time.monotonic() + timeout
    seen, sizes = set(), {}
    while time.monotonic() < deadline:
        ready = []
        for path in list_images(folder):
            if path in seen:
                continue
            size = os.path.getsize(path)
            if sizes.get(path) == size:
                ready.append(path)
            sizes[path] = size
        if max_images is not None:
            ready = ready[: max_images - demo.scored - demo.failed]
        seen.update(ready)
        demo.run(ready)
        if max_images is not None and demo.scored + demo.failed >= max_images:
            return
        time.sleep(poll_interval)


def print_summary(demo, args, wall_seconds):
    summary = latency_summary(demo.scorer.timings)
    mode = "single-image" if args.batch_size == 1 else f"batch size {args.batch_size}"
    print(
        f"summary: {demo.scored} images scored, {demo.failed} failed; {mode}, {args.threads} thread(s), "
        f"signature {demo.scorer.signature}"
    )
    if summary["images"]:
        print(
            f"latency per call: p50 {summary['call_ms_p50']:.3f} ms, p99 {summary['call_ms_p99']:.3f} ms; "
            f"per image: p50 {summary['image_ms_p50']:.3f} ms, p99 {summary['image_ms_p99']:.3f} ms"
        )
        print(
            f"throughput: {summary['images_per_s']:.1f} images/s (inference), "
            f"{demo.scored / wall_seconds:.1f} images/s (end to end, with decoding)"
        )


def main(argv=None):
    args = parse_args(argv)
    if not os.path.isfile(args.model):
        print(f"error: {args.model}: no such model file", file=sys.stderr)
        return 2
    if not os.path.isdir(args.images):
        print(f"error: {args.images}: not a directory", file=sys.stderr)
        return 2
    try:
        scorer = Scorer(args.model, threads=args.threads)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    scorer.warm_up(args.batch_size)
    demo = Demo(scorer, args.batch_size, args.resize, args.threshold)
    started = time.perf_counter()
    if args.watch:
        watch(demo, args.images, args.max_images, args.timeout, args.poll_interval)
    else:
        paths = list_images(args.images)
        if not paths:
            print(f"error: {args.images}: no image files ({', '.join(IMAGE_SUFFIXES)})", file=sys.stderr)
            return 2
        demo.run(paths)
    print_summary(demo, args, time.perf_counter() - started)
    return 1 if demo.failed else 0


if __name__ == "__main__":
    sys.exit(main())
