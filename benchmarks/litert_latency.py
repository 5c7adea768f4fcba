"""LiteRT latency of the benchmarked model, exported with ``export``."""

import os
import tempfile

from benchmarks.common import log


def bench_litert_section(settings, model):
    from benchmarks import bench_litert
    from benchmarks.timing import load_average
    from export.exporter import export_model

    load_start = load_average()
    with tempfile.TemporaryDirectory() as directory:
        log(f"LiteRT: exporting {list(settings.litert_targets)}")
        export_model(model, directory, targets=settings.litert_targets)
        results = {}
        for tag in settings.litert_targets:
            path = os.path.join(directory, f"gradcon_{tag}.tflite")
            results[tag] = bench_litert.bench_model(
                path, settings.litert_repeats, settings.litert_batch_repeats, os.cpu_count()
            )
            results[tag]["path"] = f"gradcon_{tag}.tflite (the scoring section's model)"
    import ai_edge_litert

    return {
        "load_average_start": load_start,
        "load_average_end": load_average(),
        "ai_edge_litert": ai_edge_litert.__version__,
        "target_ms_per_image_batch1_1thread": bench_litert.TARGET_MS,
        "models": results,
    }
