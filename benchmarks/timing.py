"""Timing helpers for a noisy shared machine: interleaved rounds, medians and spreads.

Every case of a section is timed once per round, the order rotated from round to round, so that a
burst of load from other processes hits all cases alike; ratios are taken within a round and then
summarised over rounds.
"""

import os
import time

import numpy as np


def load_average():
    """The 1-, 5- and 15-minute load averages (runnable processes, this machine)."""
    return [round(v, 2) for v in os.getloadavg()]


def summary(samples):
    """Median, p10/p90, quartiles, min and max of ``samples`` (any unit), and their count."""
    values = np.asarray(samples, dtype=np.float64)
    p10, q25, median, q75, p90 = np.percentile(values, [10, 25, 50, 75, 90])
    return {
        "median": float(median),
        "p10": float(p10),
        "p90": float(p90),
        "q25": float(q25),
        "q75": float(q75),
        "min": float(values.min()),
        "max": float(values.max()),
        "n": int(values.size),
    }


def seconds(fn):
    """Wall time of one call of ``fn`` (which must block until its result is ready)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(cases, rounds):
    """Run each case once per round, rotating the order; return ({name: [result per round]}, loads).

    ``cases`` maps a name to a zero-argument callable that returns one measurement (a number or a
    list of numbers for the round). ``loads`` is the 1-minute load average after each round.
    """
    names = list(cases)
    results = {name: [] for name in names}
    loads = []
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            results[name].append(cases[name]())
        loads.append(round(os.getloadavg()[0], 2))
    return results, loads


def flatten(per_round):
    """[[a, b], [c], ...] or [a, b, ...] -> a flat list of numbers."""
    flat = []
    for item in per_round:
        flat.extend(item if isinstance(item, (list, tuple)) else [item])
    return flat
