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
    # what the text around the example says it prints (seeds 0-2 measured: AUROC 0.999-1.000,
    # every outlier flagged, 12-20 % of the inliers at fpr=0.2)
    found = re.search(r"AUROC (\S+); flagged: (\d+)% of outliers, (\d+)% of inliers", result.stdout)
    assert found, result.stdout[-2000:]
    assert float(found[1]) > 0.95 and int(found[2]) > 90 and int(found[3]) < 35, found[0]
    assert "CalibrationWarning" not in result.stderr  # it calibrates on enough images
