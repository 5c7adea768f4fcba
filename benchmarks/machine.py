"""The machine a benchmark runs on: software, CPU model, vector extensions, clock and fp32 peak."""

import datetime
import os
import platform
import subprocess

from benchmarks.common import REPO


#: fp32 FLOP per cycle per core, assuming two FMA units (2 FLOP per lane per FMA).
FLOP_PER_CYCLE = {"AVX-512": 64, "AVX2": 32}


def cpu():
    """CPU model, vector extensions, core count and clock from /proc/cpuinfo (lscpu's maximum
    clock when it reports one), and the theoretical fp32 peak they imply."""
    info = {}
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    flags = set(info.get("flags", "").split())
    extensions = [name for name, flag in (("AVX2", "avx2"), ("FMA", "fma"), ("AVX-512", "avx512f"))
                  if flag in flags]
    mhz, clock_source = _lscpu_max_mhz(), "lscpu max MHz"
    if mhz is None and info.get("cpu MHz"):
        mhz, clock_source = float(info["cpu MHz"]), "/proc/cpuinfo cpu MHz"
    cores = os.cpu_count()
    widest = "AVX-512" if "AVX-512" in extensions else "AVX2" if "AVX2" in extensions else None
    peak = None
    if widest and mhz and cores:
        peak = cores * mhz / 1000 * FLOP_PER_CYCLE[widest]
    return {
        "model": info.get("model name") or platform.processor() or None,
        "vector_extensions": extensions,
        "cores": cores,
        "clock_mhz": mhz,
        "clock_source": clock_source if mhz else None,
        "theoretical_fp32_peak_gflops": peak,
        "peak_assumption": (
            f"cores x GHz x {FLOP_PER_CYCLE[widest]} FLOP/cycle ({widest}, fp32, 2 FMA units)"
            if peak else "no AVX2/AVX-512 or no clock: not computed"
        ),
    }


def _lscpu_max_mhz():
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "CPU max MHz":
            try:
                return float(value)
            except ValueError:
                return None
    return None


def environment():
    """Date, software, git state and the CPU (:func:`cpu`) of this run."""
    import keras
    import tensorflow as tf

    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "processor": platform.processor() or None,
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "git_commit": git("rev-parse", "HEAD"),
        "library_files_modified_in_worktree": (git("status", "--porcelain", "--", "gradcon_tf") or "").splitlines(),
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "load_average_start": [round(v, 2) for v in os.getloadavg()],
        "cpu": cpu(),
    }
