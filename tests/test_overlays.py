"""Overlay PNGs of the anomaly maps: the panels hold the image and the heat of each map, a colour
bar gives each map's scale (its own, or one shared by all images), file names follow the images'."""

import numpy as np
from PIL import Image

from gradcon_tf.portable import overlays


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


def panels_of(picture, size=28, zoom=4):
    """The panels of an overlay PNG of ``size`` x ``size`` images, at their pixels' centres."""
    top = overlays.MARGIN + overlays.TITLE
    xs = [overlays.MARGIN + i * (size * zoom + overlays.MARGIN) for i in range(len(overlays.PANELS) + 2)]
    return [picture[top : top + size * zoom : zoom, x : x + size * zoom : zoom] for x in xs], xs


def test_overlay_panels(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(28, 28, 1), dtype=np.uint8)
    maps = {name: rng.uniform(size=(28, 28)) for name, _ in overlays.PANELS}
    path = overlays.write_overlay(str(tmp_path), overlays.OverlayNames()("a/b/shot.jpg"), image,
                                  maps, "shot.jpg", 0.25, 0.01, True)
    assert path.endswith("shot.png")
    picture = np.asarray(Image.open(path))
    panels, _ = panels_of(picture)
    np.testing.assert_array_equal(panels[0], np.repeat(image, 3, axis=-1))
    for panel, (name, _) in zip(panels[1:], overlays.PANELS):
        expected = overlays.heat(maps[name], float(np.percentile(maps[name], 99)))
        np.testing.assert_array_equal(panel, expected, err_msg=name)
    blend = 0.5 * np.repeat(image, 3, -1).astype(np.float32) + 0.5 * expected.astype(np.float32)
    np.testing.assert_array_equal(panels[-1], blend.astype(np.uint8))
    caption = picture[overlays.MARGIN + overlays.TITLE + 28 * 4 :]
    assert (caption[..., 1] < 100).any()  # text, in red for an anomaly somewhere


def test_colour_bar_under_each_map_runs_from_zero_to_its_scale():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(28, 28, 1), dtype=np.uint8)
    maps = {name: rng.uniform(size=(28, 28)) for name, _ in overlays.PANELS}
    picture = np.asarray(overlays.overlay_image(image, maps, "x", 0.1))
    _, xs = panels_of(picture)
    bar_y = overlays.MARGIN + overlays.TITLE + 28 * 4 + 2
    assert (picture[bar_y : bar_y + overlays.BAR, xs[0] : xs[0] + 112] == 255).all()  # none under the image
    for x in xs[1:]:
        bar = picture[bar_y + overlays.BAR // 2, x : x + 112]
        np.testing.assert_array_equal(bar[0], [0, 0, 0])
        np.testing.assert_array_equal(bar[-1], [255, 255, 255])
        assert np.all(np.diff(bar.astype(int).sum(-1)) >= 0)
        labels = picture[bar_y + overlays.BAR : bar_y + overlays.BAR + overlays.BAR_LABELS, x : x + 112]
        assert (labels < 128).any()  # "0" and the scale


def test_shared_scale_draws_a_quiet_map_cooler_than_a_loud_one():
    image = np.zeros((28, 28, 1), np.uint8)
    quiet = {name: np.full((28, 28), 0.1) for name, _ in overlays.PANELS}
    loud = {name: np.full((28, 28), 1.0) for name, _ in overlays.PANELS}
    scales = {name: 1.0 for name, _ in overlays.PANELS}

    def gradcon_panel(maps, shared):
        picture = np.asarray(overlays.overlay_image(image, maps, "x", 0.0, scales=shared))
        return panels_of(picture)[0][3].astype(int).sum()

    assert gradcon_panel(quiet, None) == gradcon_panel(loud, None)  # each on its own scale
    assert gradcon_panel(quiet, scales) < gradcon_panel(loud, scales) / 5
    assert overlays.map_scale(np.arange(101.0)) == 99.0


def test_overlay_names_follow_the_images_without_an_index():
    names = overlays.OverlayNames()
    assert [names(p) for p in ("a/0000_inlier.png", "b/0000_inlier.jpg", "c/shot.jpeg", "d/")] == [
        "0000_inlier.png", "0000_inlier_2.png", "shot.png", "image.png"]


def _panel(sheet, index, side):
    """The ``index``-th panel (side x side) of an overlay sheet, as an array."""
    x = overlays.MARGIN + index * (side + overlays.MARGIN)
    top = overlays.MARGIN + overlays.TITLE
    return np.asarray(sheet)[top : top + side, x : x + side]


def test_maps_are_drawn_at_the_image_resolution_with_the_mask_outlined():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 200, (150, 150, 1), dtype=np.uint8)  # 150 px: no zoom
    small_map = np.zeros((10, 10), np.float32)
    small_map[4:6, 4:6] = 1.0
    mask = np.zeros((150, 150), bool)
    mask[40:90, 50:100] = True
    maps = {name: small_map for name, _ in overlays.PANELS}
    sheet = overlays.overlay_image(image, maps, "title", 1.0, mask=mask)
    assert sheet.size[0] == overlays.MARGIN + 5 * (150 + overlays.MARGIN)
    shown = _panel(sheet, 0, 150)
    edge = np.zeros_like(mask)  # the boundary by hand: the rectangle's four sides
    edge[40, 50:100] = edge[89, 50:100] = edge[40:90, 50] = edge[40:90, 99] = True
    assert np.array_equal(overlays.outline(mask), edge)
    assert (shown[edge] == overlays.MASK_COLOUR).all()
    assert np.array_equal(shown[~edge], np.repeat(image, 3, axis=-1)[~edge])  # the image itself
    # the 10x10 map resized bilinearly to 150x150: hot in the middle, cold at the corners
    heat_panel = _panel(sheet, 1, 150).astype(int)
    assert heat_panel[75, 75].sum() > 3 * 200 and heat_panel[5, 5].sum() == 0
    no_mask = overlays.overlay_image(image, maps, "title", 1.0)
    assert np.array_equal(_panel(no_mask, 0, 150), np.repeat(image, 3, axis=-1))


def test_images_larger_than_the_panel_limit_are_shown_reduced():
    image = np.zeros((2000, 1000, 3), np.uint8)
    maps = {name: np.zeros((20, 10), np.float32) for name, _ in overlays.PANELS}
    sheet = overlays.overlay_image(image, maps, "title", 1.0, mask=np.ones((2000, 1000), bool))
    width = overlays.MAX_PANEL // 2
    assert sheet.size[0] == overlays.MARGIN + 5 * (width + overlays.MARGIN)
