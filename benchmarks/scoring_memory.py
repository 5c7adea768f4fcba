"""Peak memory while scoring N images streamed from a generator through tf.data (one process).

    python -m benchmarks.scoring_memory --images 60000 [--batch-size 256]

Prints one JSON object. Meant to run in its own process (``benchmarks.run`` starts one per N), so
that the process peak belongs to that N alone. The images are made batch by batch by a generator
(never all N at once); the scores (7 floats per image) are the only thing that grows with N.

Memory figures (MiB): ``rss_before`` after the model is built and scoring has been traced on a few
batches; ``peak_rss_streaming``, the kernel's high-water mark (VmHWM) reset just before streaming
(``/proc/self/clear_refs``) and read after it; ``sampled_peak_rss_streaming``, the largest RSS seen
by a thread reading ``/proc/self/statm`` every 10 ms; ``peak_rss_before_streaming``, VmHWM before
the reset (import, build, warm-up; not ``getrusage``, whose maxrss keeps the parent's peak across
exec); ``process_peak_rss``, the largest of these; ``rss_timeline``, RSS every ~5,000 images.
"""

import argparse
import json
import os
import resource
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

MIB = 1024 * 1024


def current_rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def high_water_mark():
    """VmHWM in bytes, or None where /proc does not give it."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def reset_high_water_mark():
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class RssSampler(threading.Thread):
    def __init__(self, interval=0.01):
        super().__init__(daemon=True)
        self.interval, self.peak, self._stop_event = interval, 0, threading.Event()

    def run(self):
        while not self._stop_event.is_set():
            self.peak = max(self.peak, current_rss())
            time.sleep(self.interval)

    def stop(self):
        self._stop_event.set()
        self.join()
        self.peak = max(self.peak, current_rss())
        return self.peak


def image_batches(count, batch_size, channels=1, seed=0, timeline=None, every=5000, side=28):
    """Yield ``count`` uint8 images in batches, made on the fly.

    With ``timeline`` (a list), append (images yielded so far, RSS MiB) about every ``every`` images
    (the generator runs a few batches ahead of the scoring, by the prefetch depth).
    """
    rng = np.random.default_rng(seed)
    next_mark = 0
    for start in range(0, count, batch_size):
        if timeline is not None and start >= next_mark:
            timeline.append((start, round(current_rss() / MIB, 1)))
            next_mark += every
        n = min(batch_size, count - start)
        yield rng.integers(0, 256, size=(n, side, side, channels), dtype=np.uint8)
    if timeline is not None:
        timeline.append((count, round(current_rss() / MIB, 1)))


def streamed(count, batch_size, timeline=None, side=28):
    import tensorflow as tf

    return tf.data.Dataset.from_generator(
        lambda: image_batches(count, batch_size, timeline=timeline, side=side),
        output_signature=tf.TensorSpec((None, side, side, 1), tf.uint8),
    )


def measure(images, batch_size, warmup_images=512, side=28):
    import keras

    import gradcon_tf

    keras.utils.set_random_seed(0)
    model = gradcon_tf.GradCon(input_shape=(side, side, 1))
    rng = np.random.default_rng(0)
    for reference in model.reference_gradients:  # as after training: non-zero references
        reference.assign(rng.normal(size=reference.shape).astype(np.float32))
    model.score(streamed(warmup_images, batch_size, side=side), batch_size=batch_size)
    rss_before = current_rss()
    # import, build, warm-up: VmHWM (getrusage's maxrss would carry the parent's peak across exec)
    maxrss_before = high_water_mark() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    reset = reset_high_water_mark()
    sampler = RssSampler()
    sampler.start()
    start = time.perf_counter()
    timeline = []
    outputs = model.score(streamed(images, batch_size, timeline, side), batch_size=batch_size)
    wall = time.perf_counter() - start
    sampled_peak = sampler.stop()
    hwm = high_water_mark() if reset else None
    return {
        "images": images,
        "batch_size": batch_size,
        "scores_returned": int(outputs["score"].shape[0]),
        "scores_finite": bool(np.all(np.isfinite(outputs["score"]))),
        "rss_before_mib": rss_before / MIB,
        "peak_rss_streaming_mib": None if hwm is None else hwm / MIB,
        "sampled_peak_rss_streaming_mib": sampled_peak / MIB,
        "rss_after_mib": current_rss() / MIB,
        "peak_rss_before_streaming_mib": maxrss_before / MIB,
        "process_peak_rss_mib": max(maxrss_before, sampled_peak, hwm or 0) / MIB,
        "high_water_mark_reset": reset,
        "rss_timeline_mib": timeline,  # (images generated so far, RSS)
        "wall_s": wall,
        "images_per_s": images / wall,
        "load_average_end": [round(v, 2) for v in os.getloadavg()],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--side", type=int, default=28, help="image side (the network's default)")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.images, args.batch_size, side=args.side)))


if __name__ == "__main__":
    main()
