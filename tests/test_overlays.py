"""Overlay PNGs of the anomaly maps: the panels hold the image and the heat of each map."""

import numpy as np
from PIL import Image

from gradcon_tf import overlays


def test_heat_runs_black_red_yellow_white():
    values = np.array([[0.0, 1.0, 2.0, 3.0, -1.0, 9.0, np.nan]])
    colours = overlays.heat(values, top=3.0)[0]
    np.testing.assert_array_equal(colours[0], [0, 0, 0])
    np.testing.assert_array_equal(colours[1], [255, 0, 0])
    np.testing.assert_array_equal(colours[2], [255, 255, 0])
    np.testing.assert_array_equal(colours[3], [255, 255, 255])
    np.testing.assert_array_equal(colours[4], [0, 0, 0])  # below 0: black
    np.testing.assert_array_equal(colours[5], [255, 255, 255])  # above top: white
    np.testing.assert_array_equal(colours[6], [0, 0, 0])  # NaN: black
    brightness = overlays.heat(np.linspace(0, 1, 50)[None], 1.0)[0].astype(int).sum(-1)
    assert np.all(np.diff(brightness) >= 0)


def test_overlay_panels(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(28, 28, 1), dtype=np.uint8)
    maps = {name: rng.uniform(size=(28, 28)) for name, _ in overlays.PANELS}
    path = overlays.write_overlay(str(tmp_path), overlays.overlay_name("a/b/shot.png", 3), image,
                                  maps, "shot.png", 0.25, 0.01, True)
    assert path.endswith("0003_shot.png")
    picture = np.asarray(Image.open(path))
    scale = 4  # 28 -> 112
    top = overlays.MARGIN + 12
    panels = []
    for index in range(1 + len(overlays.PANELS) + 1):
        x = overlays.MARGIN + index * (28 * scale + overlays.MARGIN)
        panels.append(picture[top : top + 28 * scale : scale, x : x + 28 * scale : scale])
    np.testing.assert_array_equal(panels[0], np.repeat(image, 3, axis=-1))
    for panel, (name, _) in zip(panels[1:], overlays.PANELS):
        expected = overlays.heat(maps[name], float(np.percentile(maps[name], 99)))
        np.testing.assert_array_equal(panel, expected, err_msg=name)
    blend = 0.5 * np.repeat(image, 3, -1).astype(np.float32) + 0.5 * expected.astype(np.float32)
    np.testing.assert_array_equal(panels[-1], blend.astype(np.uint8))
    caption = picture[top + 28 * scale :]
    assert (caption[..., 1] < 100).any()  # text, in red for an anomaly somewhere
