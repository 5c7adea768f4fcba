"""The exported scoring graph's names: signature keys, the input and the outputs.

Written by the exporter (``gradcon_tf.export``), read by ``gradcon-edge``, TF Serving's client
and the benchmarks: one definition for all.
"""

FLOAT_SIGNATURE = "serving_default"  # float32 images in [0, 1]
UINT8_SIGNATURE = "score_uint8"  # uint8 images, 0..255
MAPS_FLOAT_SIGNATURE = "maps"  # float32 images in [0, 1], with the anomaly maps
MAPS_UINT8_SIGNATURE = "maps_uint8"  # uint8 images, with the anomaly maps
INPUT_NAME = "images"
OUTPUT_NAMES = ("score", "recon", "grad_loss", "layer_cosines", "is_anomaly", "threshold", "p_value")
#: The anomaly maps of the map signatures, (N, H, W) each.
MAP_NAMES = ("recon_map", "grad_map", "score_map")
#: Also in the map signatures: (N, len(MAP_NAMES)), each map's shared scale from the calibration
#: images (their 99th percentile), repeated per image; NaN for a model calibrated without it.
MAP_SCALES = "map_scales"
