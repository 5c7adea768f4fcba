"""Anomaly-map overlays as PNGs: the image, its maps as heat with a colour bar, and the last map
over the image.

A map's heat spans 0 to a scale: by default each map's own 99th percentile (``image``: every
overlay uses its full colour range, so an inlier's map looks as hot as an outlier's), or one
value per map for all images (``calibration``: the 99th percentile of the calibration images'
maps, so that maps compare across images). The colour bar under each map gives its scale.
"""

import math
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

MIN_PANEL = 112  # maps and images are upscaled (nearest) by a whole factor to this many pixels
MARGIN = 6
TITLE = 12  # the panel titles above the panels
BAR = 6  # the colour bar's height under each map panel
BAR_LABELS = 12  # its "0" and scale labels under it
CAPTION = 28  # two lines of text under the panels
ANOMALY_COLOUR = (200, 0, 0)
#: Panels after the image: (map output name, title).
PANELS = (("recon_map", "recon error"), ("grad_map", "gradient"), ("score_map", "GradCon"))
#: ``--map-scale`` choices (see the module's docstring).
MAP_SCALE_CHOICES = ("image", "calibration")
#: The percentile of a map's values its scale is.
SCALE_PERCENTILE = 99


def heat(values, top):
    """(H, W) values -> (H, W, 3) uint8, black -> red -> yellow -> white over [0, ``top``]."""
    level = np.clip(np.nan_to_num(values / top if top > 0 else values * 0.0), 0.0, 1.0) * 3.0
    rgb = np.stack([level, level - 1.0, level - 2.0], axis=-1)
    return (255 * np.clip(rgb, 0.0, 1.0)).astype(np.uint8)


def map_scale(values):
    """The scale of ``values`` (one map or many): their :data:`SCALE_PERCENTILE` percentile."""
    return float(np.percentile(values, SCALE_PERCENTILE))


def _rgb(image):
    image = np.asarray(image)
    return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3]


def overlay_image(image, maps, title, score, p_value=math.nan, is_anomaly=None, scales=None):
    """A PIL image: ``image`` (uint8 HWC), each map of ``maps`` ({name: (H, W)}) in
    :data:`PANELS` order as heat over [0, its scale] with a colour bar, then the last map blended
    over the image; caption ``title``, score, p-value and decision. ``scales``: {name: scale}
    shared by all images; None: each map's own :func:`map_scale`."""
    height, width = image.shape[:2]
    zoom = max(1, math.ceil(MIN_PANEL / max(height, width)))
    names = [(name, label) for name, label in PANELS if name in maps]
    tops = {name: scales[name] if scales is not None else map_scale(maps[name]) for name, _ in names}
    tiles = [("image", _rgb(image), None)]
    for name, label in names:
        tiles.append((label, heat(maps[name], tops[name]), tops[name]))
    if names:
        last = names[-1][0]
        blend = 0.5 * _rgb(image).astype(np.float32) + 0.5 * heat(maps[last], tops[last])
        tiles.append((f"{names[-1][1]} over image", blend.astype(np.uint8), tops[last]))
    panel_width, panel_height = width * zoom, height * zoom
    bar_y = MARGIN + TITLE + panel_height + 2
    caption_y = bar_y + BAR + BAR_LABELS + MARGIN
    size = (MARGIN + len(tiles) * (panel_width + MARGIN), caption_y + CAPTION)
    sheet = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for index, (label, pixels, top) in enumerate(tiles):
        x = MARGIN + index * (panel_width + MARGIN)
        draw.text((x, MARGIN - 2), label, fill="black", font=font)
        tile = Image.fromarray(pixels).resize((panel_width, panel_height), Image.Resampling.NEAREST)
        sheet.paste(tile, (x, MARGIN + TITLE))
        if top is not None:
            _colour_bar(sheet, draw, font, (x, bar_y), panel_width, top)
    decision = {True: "ANOMALY", False: "normal", None: ""}[is_anomaly]
    p_text = "" if math.isnan(p_value) else f"  p-value {p_value:.4f}"
    draw.text((MARGIN, caption_y), title, fill="black", font=font)
    draw.text(
        (MARGIN, caption_y + CAPTION // 2), f"score {score:.5g}{p_text}  {decision}",
        fill=ANOMALY_COLOUR if is_anomaly else "black", font=font,
    )
    return sheet


def _colour_bar(sheet, draw, font, corner, width, top):
    """The heat ramp over [0, ``top``] at ``corner``, ``width`` pixels wide, labelled 0 and top."""
    ramp = heat(np.linspace(0.0, top, width)[None, :], top)
    sheet.paste(Image.fromarray(np.repeat(ramp, BAR, axis=0)), corner)
    x, y = corner
    label = f"{top:.3g}"
    draw.text((x, y + BAR), "0", fill="black", font=font)
    draw.text((x + width - draw.textlength(label, font=font), y + BAR), label, fill="black", font=font)


class OverlayNames:
    """PNG file names for overlays: ``shot.png`` for ``any/folder/shot.jpg``; a name seen before
    gets ``_2``, ``_3``, ..."""

    def __init__(self):
        self.taken = set()

    def __call__(self, path):
        stem = os.path.splitext(os.path.basename(path))[0] or "image"
        name, count = f"{stem}.png", 1
        while name in self.taken:
            count += 1
            name = f"{stem}_{count}.png"
        self.taken.add(name)
        return name


def check_overlay_folder(folder, paths):
    """Raise ValueError when one of the input ``paths`` is directly in ``folder``: an overlay
    named after it could replace it."""
    real = os.path.realpath(folder)
    inside = next((p for p in paths if os.path.dirname(os.path.realpath(p)) == real), None)
    if inside is not None:
        raise ValueError(f"--maps {folder}: holds the input images (e.g. {inside}), which overlays "
                         "named after them would replace; choose another folder")


def write_overlay(folder, name, image, maps, title, score, p_value=math.nan, is_anomaly=None,
                  scales=None):
    """Save :func:`overlay_image` as ``folder/name``; returns the path."""
    path = os.path.join(folder, name)
    overlay_image(image, maps, title, score, p_value, is_anomaly, scales).save(path, format="PNG")
    return path


def write_overlays(folder, results, images, outputs, names, scales=None):
    """One overlay per scored image: ``results`` (path, score, p_value, is_anomaly each), the
    uint8 ``images``, the scorer's ``outputs`` with the maps, ``names`` an :class:`OverlayNames`;
    returns the paths written."""
    paths = []
    for i, (result, image) in enumerate(zip(results, images)):
        maps = {name: outputs[name][i] for name, _ in PANELS}
        paths.append(write_overlay(
            folder, names(result.path), image, maps, result.path, result.score, result.p_value,
            result.is_anomaly, scales,
        ))
    return paths
