"""The benchmark suite: training and scoring speed, LiteRT latency, scoring memory, FLOPs.

    python -m benchmarks.run --out docs/results/benchmarks          # the full run (~6 min on 2 cores)
    python -m benchmarks.run --out OUT --smoke               # a few repeats, small N (tests)
    python -m benchmarks.run --out docs/results/benchmarks-avx2 --isa avx2   # as on an AVX2-only CPU

Writes ``OUT/benchmarks.json`` (every figure, with its spread and the machine load) and
``OUT/README.md`` (the summary tables). Sections:

* training step at batch 64, graph and XLA (``compile(jit_compile=True)``): the model's compiled
  train function called on one fixed batch, each step timed; its trace count is checked not to
  grow. In the same rounds, the parts of a step (forward, inner tape, loss gradients, a plain
  autoencoder step without the gradient constraint) for the training profile;
* scoring throughput: ``model.score`` and the raw ``tf.function`` of ``per_sample_scores`` at
  batch 256 and 512, and in the same rounds a batch-of-one GradientTape loop as the authors'
  release scores (one image at a time: forward, gradient of its own MSE w.r.t. the decoder kernels,
  cosines); then the scoring profile (``benchmarks/scoring_profile.py``);
* one real epoch of the reproduction's training (``experiment.train_one_class``, 5,400 images,
  validation on 600) and the 20-epoch wall time from it and from the step time;
* LiteRT latency (``benchmarks/bench_litert.py``) of the same model, exported with ``export``;
* peak RSS while scoring N images streamed through tf.data, one subprocess per N
  (``benchmarks/scoring_memory.py``);
* the fp32 peak of this machine (2048x2048 ``tf.linalg.matmul``), timed inside the training and
  scoring rounds, and the achieved GFLOP/s from the analytic FLOPs (``benchmarks/flops.py``).

``--isa avx2`` caps oneDNN (TensorFlow's and PyTorch's convolution and matmul kernels) and MKL
(PyTorch's matmul) at AVX2 before either framework loads: an AVX-512 machine then runs the kernels
an AVX2-only CPU would. With torch installed (``pip install torch==2.13.0``) the release's algorithm
in PyTorch (``benchmarks/pytorch_release.py``) is timed in the same rounds as ours, training step
and batch-of-one scoring, so every run gives same-machine ratios.

Timings on a shared machine are noisy: every section interleaves its cases round by round (order
rotated), reports medians with p10/p90, takes ratios within a round, and records the load average.
"""

import argparse
import dataclasses
import json
import os
import time

from benchmarks.common import RELEASE, SMOKE, Settings, TARGETS, log
from benchmarks.epochs import bench_epochs
from benchmarks.litert_latency import bench_litert_section
from benchmarks.machine import environment
from benchmarks.memory import finish_memory_probe, memory_summary, start_memory_probe
from benchmarks.scoring import bench_scoring, bench_scoring_profile
from benchmarks.summary import markdown
from benchmarks.training import bench_training


#: Environment variables of each ``--isa`` configuration.
ISA_CAPS = {
    "native": {},
    "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for benchmarks.json and README.md")
    parser.add_argument("--smoke", action="store_true", help="few repeats, small N (for tests)")
    parser.add_argument("--rounds", type=int, help="override the number of interleaved rounds")
    parser.add_argument("--skip-litert", action="store_true")
    parser.add_argument("--isa", choices=tuple(ISA_CAPS), default="native",
                        help="native, or avx2: cap oneDNN and MKL at AVX2 (as on an AVX2-only CPU)")
    args = parser.parse_args(argv)
    os.environ.update(ISA_CAPS[args.isa])  # before TensorFlow or torch is imported
    settings = SMOKE if args.smoke else Settings()
    if args.rounds:
        settings = dataclasses.replace(settings, rounds=args.rounds, profile_rounds=args.rounds)
    command = "python -m benchmarks.run --out " + args.out + (" --smoke" if args.smoke else "") + (
        f" --rounds {args.rounds}" if args.rounds else "") + (" --skip-litert" if args.skip_litert else "") + (
        f" --isa {args.isa}" if args.isa != "native" else "")
    started = time.perf_counter()
    probes = [start_memory_probe(n) for n in settings.memory_images] if settings.memory_parallel else None

    import gradcon_tf

    from benchmarks import flops

    report = {"smoke": args.smoke, "command": command, "isa": args.isa,
              "isa_environment": ISA_CAPS[args.isa], "settings": dataclasses.asdict(settings),
              "environment": environment(), "release": RELEASE, "targets": TARGETS}
    report["flops"] = flops.per_image(gradcon_tf.GradCon())
    train_flops = report["flops"]["training_image"]["total"]
    score_flops = report["flops"]["scored_image"]["total"]
    report["training"] = bench_training(settings, train_flops)
    report["scoring"], model = bench_scoring(settings, score_flops)
    report["scoring_profile"] = bench_scoring_profile(settings, model)
    from benchmarks.timing import summary

    report["matmul_peak_gflops"] = summary(
        report["training"]["matmul_samples_gflops"] + report["scoring"]["matmul_samples_gflops"]
    )
    report["epochs"] = bench_epochs(settings, report["training"]["step_ms"]["graph"]["median"])
    if not args.skip_litert:
        report["litert"] = bench_litert_section(settings, model)
    log(f"memory: scoring {list(settings.memory_images)} images streamed, one process each")
    if probes is None:
        runs = [finish_memory_probe(start_memory_probe(n)) for n in settings.memory_images]
    else:
        runs = [finish_memory_probe(p) for p in probes]
    report["memory"] = memory_summary(runs)
    report["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    report["wall_s"] = time.perf_counter() - started

    from gradcon_tf import _files as files

    os.makedirs(args.out, exist_ok=True)
    files.write_text(os.path.join(args.out, "benchmarks.json"), json.dumps(report, indent=1) + "\n")
    files.write_text(os.path.join(args.out, "README.md"), markdown(report, command) + "\n")
    log(f"wrote {args.out}/benchmarks.json and README.md in {report['wall_s']:.0f} s")
    return report


if __name__ == "__main__":
    main()
