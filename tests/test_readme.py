"""The README's Python example runs as written."""

import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_readme_python_example_runs(tmp_path):
    with open(os.path.join(REPO, "README.md")) as handle:
        blocks = re.findall(r"```python\n(.*?)```", handle.read(), re.S)
    assert blocks, "README.md has no Python example"
    result = subprocess.run(
        [sys.executable, "-c", blocks[0]], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "digit0.keras").exists()
    assert "True" in result.stdout or "False" in result.stdout  # is_anomaly was printed
    assert "CalibrationWarning" not in result.stderr  # it calibrates on enough images
