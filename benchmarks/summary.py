"""The Markdown summary (README.md) of a benchmark run."""

import os

from benchmarks.common import MATMUL_N, RELEASE, TARGETS


def fmt(value, digits=1):
    return "-" if value is None else f"{value:,.{digits}f}"


def spread(s, digits=1, scale=1.0):
    return f"{fmt(s['median'] * scale, digits)} [{fmt(s['p10'] * scale, digits)}, {fmt(s['p90'] * scale, digits)}]"


def ops_tables(ops, what, rows=12):
    """Markdown: time per TF op type (tf.profiler) and the most expensive single ops."""
    lines = [
        "",
        f"tf.profiler, {what} ({ops['calls']} calls traced; wall {ops['wall_ms_per_call']:.1f} ms per call, "
        f"op time {ops['op_ms_per_call']:.1f} ms per call summed over TF's executor threads, which overlap):",
        "",
        "| op type | role | ms per call | share of op time |",
        "|---|---|---|---|",
    ]
    for row in ops["by_op_type"][:rows]:
        lines.append(f"| {row['op_type']} | {row['role']} | {row['ms_per_call']:.2f} | {100 * row['share']:.1f} % |")
    lines += ["", "Most expensive ops: " + "; ".join(
        f"`{row['op']}` ({row['op_type']}) {row['ms_per_call']:.2f} ms" for row in ops["top_ops"][:8]) + ".", ""]
    return lines


def _machine_lines(cpu, measured):
    """The CPU and its theoretical fp32 peak beside the measured matmul peak."""
    if not cpu:
        return []
    theory = cpu["theoretical_fp32_peak_gflops"]
    share = f" ({100 * measured['median'] / theory:.0f}% of it)" if theory else ""
    return [
        f"**CPU**: {cpu['model']}, {cpu['cores']} cores at {fmt(cpu['clock_mhz'], 0)} MHz "
        f"({cpu['clock_source']}), vector extensions {', '.join(cpu['vector_extensions']) or 'none'}; "
        f"theoretical fp32 peak {fmt(theory)} GFLOP/s ({cpu['peak_assumption']}); measured "
        f"{MATMUL_N}x{MATMUL_N} matmul peak {spread(measured)} GFLOP/s{share}.",
        "",
    ]


def _anchor_lines(training, scoring):
    """The table against the PyTorch release timed in the same rounds (none without torch)."""
    if not training.get("speedup_vs_pytorch_same_round"):
        return ["No PyTorch anchor in this run (torch not installed).", ""]
    from benchmarks.scoring import PYTORCH as SCORING_ANCHOR
    from benchmarks.training import PYTORCH as TRAINING_ANCHOR

    lines = [
        "## Against the authors' algorithm in PyTorch, same run",
        "",
        "`benchmarks/pytorch_release.py`, timed in the same interleaved rounds; ratios per round, "
        "then median [p10, p90] (> 1: ours faster).",
        "",
        "| figure | ours | PyTorch release | ours / PyTorch |",
        "|---|---|---|---|",
    ]
    anchor_step = training["step_ms"][TRAINING_ANCHOR]
    for name in ("graph", "xla"):
        lines.append(
            f"| training step, batch 64, {name} (ms) | {spread(training['step_ms'][name])} | "
            f"{spread(anchor_step)} | {spread(training['speedup_vs_pytorch_same_round'][name], 2)} |"
        )
    anchor_rate = scoring["images_per_s"][SCORING_ANCHOR]
    for name in ("model.score_b256", "batch_of_one_loop"):
        lines.append(
            f"| scoring, {name}, images/s | {spread(scoring['images_per_s'][name], 0)} | "
            f"{spread(anchor_rate, 0)} (batch of one) | {spread(scoring['ratio_vs_pytorch_same_round'][name], 1)} |"
        )
    return lines + [""]


def markdown(report, command):
    env, tr, sc, fl = report["environment"], report["training"], report["scoring"], report["flops"]
    prof, ep, lite, mem = report["scoring_profile"], report["epochs"], report.get("litert"), report["memory"]
    peak = report["matmul_peak_gflops"]
    lines = [
        "# GradCon benchmarks",
        "",
        f"Run {env['date_utc']} on {env['machine']} ({', '.join(env['gpus']) or 'no GPU'}), TensorFlow "
        f"{env['tensorflow']}, Keras {env['keras']}, commit `{(env['git_commit'] or '?')[:10]}`"
        + (f" (library files modified in the work tree: {', '.join(env['library_files_modified_in_worktree'])})"
           if env["library_files_modified_in_worktree"] else "") + ".",
        "",
        f"**Machine load** (1/5/15-min load average; 2 cores, other jobs running): start "
        f"{env['load_average_start']}, end {report['load_average_end']}; per section below. The "
        "shared machine makes single timings noisy: cases are interleaved round by round, figures are "
        "medians with [p10, p90], ratios are taken within a round. The least-contended runs are the "
        "p10 of a time and the p90 of a throughput.",
        "",
        *_machine_lines(env.get("cpu"), peak),
        f"Kernel ISA: **{report.get('isa', 'native')}**"
        + (f" ({', '.join(f'{k}={v}' for k, v in report['isa_environment'].items())})"
           if report.get("isa_environment") else " (no cap)") + ".",
        "",
        "Regenerate: `" + command + "`" + (" (**smoke mode: tiny repeats, not figures to quote**)" if report["smoke"] else ""),
        "",
        *_anchor_lines(tr, sc),
        "## Summary",
        "",
        "| figure | this run: median [p10, p90] | release (2026-11-29) | speed vs release: median (least contended: p10 time, p90 throughput) | % of fp32 matmul peak (medians) |",
        "|---|---|---|---|---|",
    ]
    release_step = RELEASE["train_step_ms_batch64"]
    for name, label in (("graph", "training step, batch 64, graph (ms)"), ("xla", "training step, batch 64, XLA (ms)")):
        lines.append(
            f"| {label} | {spread(tr['step_ms'][name])} | {release_step:.0f} | "
            f"{tr['speedup_vs_release'][name]:.2f}x ({release_step / tr['step_ms'][name]['p10']:.2f}x) | "
            f"{100 * tr['fraction_of_matmul_peak'][name]:.0f} % |"
        )
    for name, label in (
        ("model.score_b256", "scoring, `model.score` (batch 256), images/s"),
        *[(f"per_sample_scores_b{s}", f"scoring, raw `per_sample_scores` tf.function, batch {s}, images/s")
          for s in report["settings"]["score_batches"]],
        ("batch_of_one_loop", "scoring, batch-of-one tape loop (release style, tf.function), images/s"),
    ):
        lines.append(
            f"| {label} | {spread(sc['images_per_s'][name], 0)} | {RELEASE['scoring_images_per_s']:.0f} | "
            f"{sc['ratio_vs_release'][name]:.2f}x ({sc['images_per_s'][name]['p90'] / RELEASE['scoring_images_per_s']:.2f}x) | "
            f"{100 * sc['fraction_of_matmul_peak'][name]:.1f} % |"
        )
    if lite and "f32" in lite["models"]:
        f32 = lite["models"]["f32"]
        rate = f32["batch32_1thread_images_per_s"]
        lines.append(
            f"| scoring, LiteRT f32, batch 32, 1 thread (median of {report['settings']['litert_batch_repeats']} "
            f"calls), images/s | {rate:,.0f} | {RELEASE['scoring_images_per_s']:.0f} | "
            f"{rate / RELEASE['scoring_images_per_s']:.2f}x | {100 * fl['scored_image']['total'] * rate / 1e9 / peak['median']:.1f} % |"
        )
        lines.append(
            f"| LiteRT f32, batch 1, 1 thread, ms per image: p50 [p99] | {f32['batch1_1thread_ms']['p50']:.3f} "
            f"[{f32['batch1_1thread_ms']['p99']:.3f}] | | | |"
        )
    lines.append(f"| fp32 peak, {MATMUL_N}x{MATMUL_N} matmul (GFLOP/s) | {spread(peak)} | | | 100 % |")
    b256 = sc["ratio_vs_batch_of_one_loop_same_round"].get("per_sample_scores_b256")
    lines += [
        "",
        "* Release figures: measured 2026-11-29 (the authors' PyTorch code on this machine, another run, not "
        "re-measured here). In brackets, our least-contended runs against them: an optimistic bound.",
        f"* Batched vs batch-of-one loop, same rounds: raw batch 256 "
        f"{spread(b256, 1) if b256 else '-'}x, `model.score` "
        f"{spread(sc['ratio_vs_batch_of_one_loop_same_round']['model.score_b256'])}x. Same numbers: "
        f"max |score difference| {sc['loop_vs_batched_same_numbers']['max_abs_diff_score']:.1e} over "
        f"{sc['loop_vs_batched_same_numbers']['images']} images. `model.score` / raw batch-256 "
        f"function, same rounds: {spread(sc['ratio_model_score_over_raw_same_round']['per_sample_scores_b256'], 2)} "
        "(the cost of Keras `predict` around the same function).",
        f"* XLA / graph step time, same rounds: {spread(tr['ratio_xla_over_graph_step_time'], 2)}. "
        f"First call (trace + compile): graph {tr['first_call_s']['graph']:.1f} s, XLA {tr['first_call_s']['xla']:.1f} s. "
        f"Trace counts after warm-up {tr['trace_count']['after_warmup']}, at the end {tr['trace_count']['at_end']} "
        "(no retracing).",
        f"* Achieved: training {spread(tr['gflops']['graph'])} GFLOP/s (graph), scoring "
        f"{spread(sc['gflops']['per_sample_scores_b256'] if 'per_sample_scores_b256' in sc['gflops'] else sc['gflops']['model.score_b256'])} "
        f"GFLOP/s (raw, batch 256), from the analytic FLOPs below.",
        f"* Load average per round: training {tr['load_average_per_round']}, scoring {sc['load_average_per_round']}.",
        f"* Targets: scoring >= {TARGETS['scoring_images_per_s']:,.0f} images/s, training step <= "
        f"{TARGETS['train_step_ms_batch64']:.0f} ms (1.5x the release). This suite measures; it changes nothing.",
        "",
        "## Whole-MNIST one-class training at the reproduction budget",
        "",
        f"{ep['budget']['epochs']} epochs x {ep['budget']['images_per_epoch']:,} images (batch 64, "
        f"{ep['budget']['steps_per_epoch']} steps per epoch):",
        "",
        f"* **measured**: {ep['measured_epochs']} real epochs of `experiment.train_one_class` "
        f"({ep['images_per_epoch']:,} images, validation on {ep['validation_images']}) took "
        f"{', '.join(f'{s:.1f}' for s in ep['epoch_s'])} s; 20 epochs = tracing once (first - later) + 20 x median later epoch = "
        f"**{ep['budget_wall_s_from_measured_epochs'] / 60:.1f} min** "
        f"({ep['budget_wall_s_from_measured_epochs']:.0f} s; load {ep['load_average_start']} -> {ep['load_average_end']});",
        f"* **computed** from the step time: 20 x {ep['budget']['steps_per_epoch']} steps x "
        f"{tr['step_ms']['graph']['median']:.1f} ms = {ep['budget_wall_s_from_step_time']:.0f} s "
        "(no validation, no tracing).",
        "",
        "## Training profile (batch 64, graph mode, same rounds as the steps)",
        "",
        "| part | ms: median [p10, p90] | share of a full step: median of same-round ratios | share, p10 / p10 (least contended) |",
        "|---|---|---|---|",
    ]
    step = tr["step_ms"]["graph"]
    lines.append(f"| full GradCon step (Eq. 6, Adam, running averages) | {spread(step)} | 100 % | 100 % |")
    for name, s in tr["parts_ms"].items():
        lines.append(
            f"| {name} | {spread(s)} | {100 * tr['parts_fraction_of_graph_step'][name]['median']:.0f} % | "
            f"{100 * s['p10'] / step['p10']:.0f} % |"
        )
    lines += ops_tables(tr["tf_profiler_ops_graph_step"], "one graph-mode training step")
    ti = fl["training_image"]["items"]
    lines += [
        "",
        "Analytic MFLOP per training image: " + ", ".join(f"{k.replace('_', ' ')} {v / 1e6:.1f}" for k, v in ti.items())
        + f"; total {fl['training_image']['total'] / 1e6:.1f} ({64 * fl['training_image']['total'] / 1e9:.2f} GFLOP per step).",
        "",
        f"## Scoring profile (fast path cut into its pieces, batch {prof['batch_size']})",
        "",
        f"Whole `per_sample_scores`: {spread(prof['whole_ms'], 2)} ms per batch; sum of the pieces "
        f"{prof['sum_of_pieces_ms']:.2f} ms (each piece also pays one tf.function dispatch, "
        f"{prof['dispatch_overhead_ms']['median']:.3f} ms). Pieces reproduce `decoder_scores` "
        f"(max |cosine difference| {prof['pieces_check_against_decoder_scores']['max_abs_diff_cosines']:.1e}). "
        f"Load {prof['load_average_start']} -> {prof['load_average_per_round'][-1]}.",
        "",
        "| category | ms (sum of its pieces' medians) | share of the sum of pieces |",
        "|---|---|---|",
    ]
    total = prof["sum_of_pieces_ms"]
    for category, ms in sorted(prof["category_ms"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {category} | {ms:.2f} | {100 * ms / total:.0f} % |")
    lines += [
        "",
        "| piece | ms: median [p10, p90] | share of the sum of pieces | MFLOP | GFLOP/s | output MiB |",
        "|---|---|---|---|---|---|",
    ]
    for row in prof["pieces"]:
        lines.append(
            f"| {row['piece']} | {spread(row['ms'], 3)} | "
            f"{'(inside)' if row['category'].startswith('(') else format(100 * row['ms']['median'] / total, '.1f') + ' %'} | "
            f"{fmt(row['mflop'] or None, 1)} | {fmt(row['gflops'], 1)} | {row['output_mib']:.2f} |"
        )
    lines += ops_tables(prof["tf_profiler_ops"], f"one `per_sample_scores` call at batch {prof['batch_size']}")
    si = fl["scored_image"]["items"]
    lines += [
        "",
        "## Analytic FLOPs (2 FLOPs per MAC; formulas in `benchmarks/flops.py`)",
        "",
        f"Per scored 28x28x1 image: **{fl['scored_image']['total'] / 1e6:.2f} MFLOP** = "
        + " + ".join(f"{k.replace('_', ' ')} {v / 1e6:.2f}" for k, v in si.items())
        + f". Per training image: **{fl['training_image']['total'] / 1e6:.1f} MFLOP**.",
        "",
        "| layer | in -> out | forward MACs | formula |",
        "|---|---|---|---|",
    ]
    for row in fl["layers"]:
        lines.append(
            f"| {row['layer']} | {'x'.join(map(str, row['input']))} -> {'x'.join(map(str, row['output']))} | "
            f"{row['forward_macs']:,} | {row['formula']} |"
        )
    lines += [
        "",
        "## Scoring memory, streamed (tf.data from a generator, batch 256, one process per N)",
        "",
        "| images | RSS before streaming (MiB) | peak RSS while streaming (MiB) | sampled peak (MiB) | peak before streaming: import, build, warm-up (MiB) | images/s |",
        "|---|---|---|---|---|---|",
    ]
    for run in mem["runs"]:
        lines.append(
            f"| {run['images']:,} | {run['rss_before_mib']:.0f} | {fmt(run['peak_rss_streaming_mib'], 0)} | "
            f"{run['sampled_peak_rss_streaming_mib']:.0f} | {run['peak_rss_before_streaming_mib']:.0f} | {run['images_per_s']:.0f} |"
        )
    lines += [
        "",
        f"{mem['images_ratio']:.0f}x the images, peak {mem['peak_ratio_large_over_small']:.3f}x "
        f"({mem['peak_growth_mib']:+.1f} MiB); peak above the RSS before streaming: "
        + ", ".join(f"{v:+.1f}" for v in mem["increase_over_rss_before_mib"]) + " MiB.",
        "",
        f"RSS while the {mem['runs'][-1]['images']:,} images stream (images generated so far: MiB): "
        + ", ".join(f"{n:,}: {v:.0f}" for n, v in mem["runs"][-1]["rss_timeline_mib"])
        + f". Second half of the run: {mem['rss_growth_second_half_of_largest_mib']:+.1f} MiB.",
        "",
    ]
    if lite:
        lines += [
            "## LiteRT (the same model exported with `export`; `benchmarks/bench_litert.py`)",
            "",
            "| model | batch 1, 1 thread: p50 ms [p99] | batch 32, 1 thread, images/s | batch 32, all threads, images/s |",
            "|---|---|---|---|",
        ]
        threads = os.cpu_count()
        for tag, model in lite["models"].items():
            for label, m in ((tag, model), (f"{tag}, with maps", model.get("maps"))):
                if m is None:
                    continue
                b1 = m["batch1_1thread_ms"]
                lines.append(
                    f"| {label} | {b1['p50']:.3f} [{b1['p99']:.3f}] | {m['batch32_1thread_images_per_s']:.0f} | "
                    f"{m.get(f'batch32_{threads}thread_images_per_s', m['batch32_1thread_images_per_s']):.0f} |"
                )
        lines += ["", f"Load {lite['load_average_start']} -> {lite['load_average_end']}.", ""]
    lines += [
        "## GPU",
        "",
        "Not run: no GPU was available to this session." if not env["gpus"] else f"Ran on {env['gpus']}.",
        "",
    ]
    return "\n".join(lines)
