"""Peak RSS while scoring N images streamed through tf.data, one subprocess per N."""

import json
import os
import subprocess
import sys

from benchmarks.common import REPO


def start_memory_probe(count):
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.scoring_memory", "--images", str(count)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )


def finish_memory_probe(process):
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"scoring_memory failed ({process.returncode}):\n{stderr[-3000:]}")
    return json.loads(stdout.strip().splitlines()[-1])


def _second_half_growth(timeline):
    """RSS at the end minus RSS half-way through (images), from a (images, RSS MiB) timeline."""
    half = timeline[-1][0] / 2
    middle = min(timeline, key=lambda point: abs(point[0] - half))
    return timeline[-1][1] - middle[1]


def memory_summary(runs):
    small, large = runs[0], runs[-1]
    key = "peak_rss_streaming_mib" if large["peak_rss_streaming_mib"] is not None else "sampled_peak_rss_streaming_mib"
    return {
        "runs": runs,
        "peak_figure": key,
        "peak_growth_mib": large[key] - small[key],
        "increase_over_rss_before_mib": [run[key] - run["rss_before_mib"] for run in runs],
        "rss_growth_second_half_of_largest_mib": _second_half_growth(large["rss_timeline_mib"]),
        "peak_ratio_large_over_small": large[key] / small[key],
        "images_ratio": large["images"] / small["images"],
    }
