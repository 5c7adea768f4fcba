"""The benchmark suite (``python -m benchmarks.run``) in smoke mode.

Runs the one command end to end with a few repeats and small N, then checks that the JSON holds
every figure with a sane value (positive, finite, ordered spreads, stable trace counts, scoring
paths that agree). No timing thresholds: the figures are the suite's to measure, not the test's.
Slow (the smoke run takes about a minute): ``python -m pytest -m slow tests/test_benchmarks.py``.
"""

import json
import math
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.slow


def positive(value):
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def check_spread(s):
    assert positive(s["median"]) and positive(s["p10"]) and positive(s["p90"]), s
    assert s["min"] <= s["p10"] <= s["q25"] <= s["median"] <= s["q75"] <= s["p90"] <= s["max"], s
    assert s["n"] >= 1


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    out = tmp_path_factory.mktemp("benchmarks")
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--out", str(out), "--smoke", "--isa", "avx2"],
        cwd=REPO, capture_output=True, text=True, timeout=900,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    with open(out / "benchmarks.json") as f:
        report = json.load(f)
    return report, (out / "README.md").read_text()


def test_flops_per_image_from_the_layer_shapes():
    import gradcon_tf
    from benchmarks import flops

    counts = flops.per_image(gradcon_tf.GradCon())
    items = counts["scored_image"]["items"]
    # 2 x MACs: encoder 2,572,800, decoder 2,263,040 (forward); decoder backward 3,936,256.
    assert items["encoder_forward"] == 2 * 2_572_800
    assert items["decoder_forward"] == 2 * 2_263_040
    assert items["decoder_input_gradients"] + items["decoder_per_sample_kernel_gradients"] == 2 * 3_936_256
    assert items["cosines"] == 2 * 2 * 115_200  # <g, r> and |g|^2 over the 115,200 decoder kernel weights
    assert counts["scored_image"]["total"] == sum(items.values())
    training = counts["training_image"]["items"]
    assert training["second_order"] == 2 * training["inner_backward"]
    assert counts["training_image"]["total"] == sum(training.values()) > 2.5 * counts["scored_image"]["total"]


def test_environment_and_load_are_recorded(suite):
    report, _ = suite
    env = report["environment"]
    for key in ("date_utc", "machine", "tensorflow", "keras", "git_commit", "gpus"):
        assert key in env
    assert len(env["load_average_start"]) == 3 and len(report["load_average_end"]) == 3
    assert report["smoke"] is True and "--smoke" in report["command"]
    assert report["isa"] == "avx2" and report["command"].endswith("--isa avx2")
    assert report["isa_environment"]["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert positive(report["wall_s"])
    cpu = env["cpu"]
    assert cpu["cores"] == os.cpu_count() and isinstance(cpu["vector_extensions"], list)
    if cpu["theoretical_fp32_peak_gflops"] is not None:
        assert positive(cpu["theoretical_fp32_peak_gflops"]) and "FLOP/cycle" in cpu["peak_assumption"]


def test_training_step_graph_and_xla(suite):
    training = suite[0]["training"]
    assert training["batch_size"] == 64
    for mode in ("graph", "xla"):
        check_spread(training["step_ms"][mode])
        check_spread(training["gflops"][mode])
        assert positive(training["speedup_vs_release"][mode])
        assert positive(training["fraction_of_matmul_peak"][mode])
        # the compiled train function is traced once and never again
        assert training["trace_count"]["after_warmup"][mode] == 1
        assert training["trace_count"]["at_end"][mode] == 1
    check_spread(training["ratio_xla_over_graph_step_time"])
    if training["speedup_vs_pytorch_same_round"] is not None:  # torch is installed: the anchor ran
        check_spread(training["step_ms"]["pytorch release"])
        for mode in ("graph", "xla"):
            check_spread(training["speedup_vs_pytorch_same_round"][mode])
    check_spread(training["matmul_peak_gflops"])
    assert len(training["parts_ms"]) == 4
    for part in training["parts_ms"].values():
        check_spread(part)
    assert training["tf_profiler_ops_graph_step"]["by_op_type"]
    assert len(training["load_average_per_round"]) == suite[0]["settings"]["rounds"]


def test_scoring_throughput_and_the_batch_of_one_loop(suite):
    scoring = suite[0]["scoring"]
    names = {"model.score_b256", "per_sample_scores_b256", "per_sample_scores_b512", "batch_of_one_loop"}
    if scoring["ratio_vs_pytorch_same_round"] is not None:  # torch is installed: the anchor ran
        names.add("pytorch release (batch of one)")
        for ratio in scoring["ratio_vs_pytorch_same_round"].values():
            check_spread(ratio)
    assert set(scoring["images_per_s"]) == names
    for name in names:
        check_spread(scoring["images_per_s"][name])
        check_spread(scoring["gflops"][name])
        assert positive(scoring["ratio_vs_release"][name])
        assert positive(scoring["fraction_of_matmul_peak"][name])
    for name in names - {"batch_of_one_loop"}:
        check_spread(scoring["ratio_vs_batch_of_one_loop_same_round"][name])
    for ratio in scoring["ratio_model_score_over_raw_same_round"].values():
        check_spread(ratio)
    same = scoring["loop_vs_batched_same_numbers"]
    assert same["max_abs_diff_score"] < 1e-5 and same["max_abs_diff_layer_cosines"] < 1e-5
    assert scoring["trace_count"]["after_warmup"] == scoring["trace_count"]["at_end"]
    assert all(count == 1 for count in scoring["trace_count"]["at_end"].values())


def test_scoring_profile(suite):
    profile = suite[0]["scoring_profile"]
    check = profile["pieces_check_against_decoder_scores"]
    assert check["max_abs_diff_cosines"] < 1e-5 and check["max_abs_diff_recon"] < 1e-6
    categories = set(profile["category_ms"])
    for wanted in ("encoder forward", "decoder forward", "decoder input gradients",
                   "per-sample kernel-gradient cosines (taps, matmuls, sums)"):
        assert wanted in categories
    assert all(positive(v) for v in profile["category_ms"].values())
    assert math.isclose(profile["sum_of_pieces_ms"], sum(profile["category_ms"].values()))
    check_spread(profile["whole_ms"])
    op_types = {row["op_type"] for row in profile["tf_profiler_ops"]["by_op_type"]}
    assert "BatchMatMulV2" in op_types  # the per-sample kernel gradients
    shares = sum(row["share"] for row in profile["tf_profiler_ops"]["by_op_type"])
    assert math.isclose(shares, 1.0, rel_tol=1e-6)


def test_epochs_and_budget_wall_time(suite):
    report = suite[0]
    epochs = report["epochs"]
    assert len(epochs["epoch_s"]) == epochs["measured_epochs"] == report["settings"]["epochs"]
    assert all(positive(s) for s in epochs["epoch_s"])
    assert epochs["budget"] == {"epochs": 20, "images_per_epoch": 5400, "steps_per_epoch": 85}
    assert positive(epochs["budget_wall_s_from_measured_epochs"])
    assert math.isclose(
        epochs["budget_wall_s_from_step_time"], 20 * 85 * report["training"]["step_ms"]["graph"]["median"] / 1e3
    )


def test_litert_latency(suite):
    litert = suite[0]["litert"]
    f32 = litert["models"]["f32"]
    assert positive(f32["bytes"])
    assert 0 < f32["batch1_1thread_ms"]["min"] <= f32["batch1_1thread_ms"]["p50"] <= f32["batch1_1thread_ms"]["p99"]
    assert positive(f32["batch32_1thread_images_per_s"])


def test_streamed_scoring_memory(suite):
    memory = suite[0]["memory"]
    small, large = memory["runs"]
    assert large["images"] > small["images"]
    for run in memory["runs"]:
        assert run["scores_returned"] == run["images"] and run["scores_finite"]
        assert positive(run["rss_before_mib"]) and positive(run["sampled_peak_rss_streaming_mib"])
        assert run["process_peak_rss_mib"] >= run["sampled_peak_rss_streaming_mib"]
        assert run["process_peak_rss_mib"] >= run["peak_rss_before_streaming_mib"]
    assert positive(memory["peak_ratio_large_over_small"])


def test_markdown_summary(suite):
    report, text = suite
    for heading in ("## Summary", "## Whole-MNIST one-class training", "## Training profile",
                    "## Scoring profile", "## Analytic FLOPs", "## Scoring memory", "## LiteRT", "## GPU"):
        assert heading in text
    assert "smoke mode" in text
    assert str(report["environment"]["load_average_start"]) in text
    assert "**CPU**:" in text and "theoretical fp32 peak" in text
    assert "Kernel ISA: **avx2** (ONEDNN_MAX_CPU_ISA=AVX2" in text
    if report["training"]["speedup_vs_pytorch_same_round"] is not None:
        assert "## Against the authors' algorithm in PyTorch, same run" in text


def test_pytorch_anchor_step_is_ours_from_the_same_weights():
    """The anchor computes the same step as GradCon.train_step: from the same weights, running
    averages and batch, the same loss J and the same updated running averages of dJ/dphi."""
    torch = pytest.importorskip("torch")
    import numpy as np
    import tensorflow as tf

    from benchmarks import pytorch_release
    from benchmarks.common import images, make_model

    anchor = pytorch_release.Release(threads=1)
    model = make_model()
    layers = [m for m in anchor.network if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    keras_layers = [l for l in model.encoder.layers + model.decoder.layers if hasattr(l, "kernel")]
    for torch_layer, keras_layer in zip(layers, keras_layers, strict=True):
        weight = torch_layer.weight.detach().numpy()
        # Conv2d (out, in, kh, kw) -> (kh, kw, in, out); ConvTranspose2d (in, out, kh, kw) -> (kh, kw, out, in)
        kernel = weight.transpose(2, 3, 1, 0)
        keras_layer.kernel.assign(kernel)
        keras_layer.bias.assign(torch_layer.bias.detach().numpy())
    for reference, anchor_reference in zip(model.reference_gradients, anchor.reference):
        reference.assign(anchor_reference.numpy().transpose(2, 3, 1, 0))
    before = [r.numpy() for r in model.reference_gradients]
    count = int(model.reference_count.numpy()) + 1
    assert count == anchor.steps + 1
    batch = images(16, seed=5)
    ours = float(model.train_step(tf.constant(batch))["loss"])
    theirs = anchor.train_step(anchor.tensor(batch))
    assert ours == pytest.approx(theirs, rel=1e-5)
    # This step's dJ/dphi, recovered from the running mean: avg_k = avg_{k-1} + (g - avg_{k-1}) / k.
    for old, reference, anchor_reference in zip(before, model.reference_gradients, anchor.reference):
        ours_gradient = old + (reference.numpy() - old) * count
        theirs_gradient = old + (anchor_reference.numpy().transpose(2, 3, 1, 0) - old) * count
        scale = np.abs(theirs_gradient - old).max()
        assert scale > 1e-4  # the step's gradient differs from the old average
        np.testing.assert_allclose(ours_gradient, theirs_gradient, rtol=0, atol=1e-3 * scale)
