"""The scale an anomaly map is drawn on: a high percentile of its values (NumPy only, shared by
the overlays and by ``GradCon.calibrate``, which keeps the calibration images' scales)."""

import numpy as np

#: The percentile of a map's values its scale is.
SCALE_PERCENTILE = 99


def map_scale(values):
    """The scale of ``values`` (one map or many): their :data:`SCALE_PERCENTILE` percentile."""
    return float(np.percentile(values, SCALE_PERCENTILE))
