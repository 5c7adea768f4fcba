"""tf.distribute: MirroredStrategy and MultiWorkerMirroredStrategy give the one-device result."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

SCRIPTS = os.path.join(os.path.dirname(__file__), "scripts")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_script(args, env=None, timeout=240):
    env = {**os.environ, "PYTHONPATH": ROOT, **(env or {})}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


@pytest.mark.slow  # kept out of the default run for its time
def test_mirrored_strategy_matches_one_device():
    done = run_script([os.path.join(SCRIPTS, "mirrored_parity.py"), "3"])
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2 and result["steps"] == result["single_steps"] == 3
    # The averages use the global (all-reduced) gradient: a per-replica average would be off by
    # far more than rounding (norms several times too small).
    # Weights to 1e-4: from the release's draw (the guarded default), Adam divides tiny gradients
    # by their own root mean square, so the replicas' summation order shows at ~2e-5 after 3
    # steps (1e-5 from the mean image); a wrongly scaled loss would be off by O(1).
    assert result["weights"] < 1e-4 and result["references"] < 1e-5
    np.testing.assert_allclose(result["reference_norm_ratio"], 1.0, atol=1e-5)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # 10-20 s; run with `pytest -m slow`
def test_multi_worker_mirrored_strategy_matches_one_process(tmp_path):
    workers = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    script = os.path.join(SCRIPTS, "multiworker_fit.py")
    processes = []
    for index in range(2):
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "PYTHONPATH": ROOT, "TF_CONFIG": json.dumps(config)}
        processes.append(subprocess.Popen(
            [sys.executable, script, str(tmp_path / "multi.npz")], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        for process in processes:
            _, stderr = process.communicate(timeout=240)
            assert process.returncode == 0, stderr[-3000:]
    finally:
        for process in processes:
            process.kill()
    single = run_script([script, str(tmp_path / "single.npz"), "--single"])
    assert single.returncode == 0, single.stderr[-3000:]
    multi, one = np.load(tmp_path / "multi.npz"), np.load(tmp_path / "single.npz")
    assert int(multi["count"]) == int(one["count"]) == 3
    for key in one.files:  # 1e-4: the summation order after the release's draw, as above
        scale = max(np.abs(one[key]).max(), 1e-30)
        assert np.abs(multi[key] - one[key]).max() / scale < 1e-4, key
