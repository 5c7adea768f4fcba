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

from .map_scales import map_scale

MIN_PANEL = 112  # maps and images are upscaled (nearest) by a whole factor to this many pixels
MAX_PANEL = 768  # larger images (and their masks) are shown reduced to this many pixels a side
MARGIN = 6
TITLE = 12  # the panel titles above the panels
BAR = 6  # the colour bar's height under each map panel
BAR_LABELS = 12  # its "0" and scale labels under it
CAPTION = 28  # two lines of text under the panels
ANOMALY_COLOUR = (200, 0, 0)
MASK_COLOUR = (0, 220, 255)  # the outline of a defect mask
#: Panels after the image: (map output name, title).
PANELS = (("recon_map", "recon error"), ("grad_map", "gradient"), ("score_map", "GradCon"))
#: ``--map-scale`` choices (see the module's docstring).
MAP_SCALE_CHOICES = ("image", "calibration")


def heat(values, top):
    """(H, W) values -> (H, W, 3) uint8, black -> red -> yellow -> white over [0, ``top``]."""
    level = np.clip(np.nan_to_num(values / top if top > 0 else values * 0.0), 0.0, 1.0) * 3.0
    rgb = np.stack([level, level - 1.0, level - 2.0], axis=-1)
    return (255 * np.clip(rgb, 0.0, 1.0)).astype(np.uint8)


def _rgb(image):
    image = np.asarray(image)
    return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3]


def overlay_image(image, maps, title, score, p_value=math.nan, is_anomaly=None, scales=None,
                  mask=None):
    """A PIL image: ``image`` (uint8 HWC), each map of ``maps`` ({name: (h, w)}, bilinearly
    resized to the image when smaller) in :data:`PANELS` order as heat over [0, its scale] with
    a colour bar, then the last map blended over the image; ``mask`` ((H, W) bool, the defect's
    ground truth) outlined on the image and on the blend; caption ``title``, score, p-value and
    decision. ``scales``: {name: scale} shared by all images; None: each map's own
    :func:`map_scale`."""
    image, mask = _shown_size(_rgb(image), mask)
    height, width = image.shape[:2]
    maps = {name: _resized(values, (height, width)) for name, values in maps.items()}
    zoom = max(1, math.ceil(MIN_PANEL / max(height, width)))
    names = [(name, label) for name, label in PANELS if name in maps]
    tops = {name: scales[name] if scales is not None else map_scale(maps[name]) for name, _ in names}
    tiles = [("image", image, None)]
    for name, label in names:
        tiles.append((label, heat(maps[name], tops[name]), tops[name]))
    if names:
        last = names[-1][0]
        blend = 0.5 * image.astype(np.float32) + 0.5 * heat(maps[last], tops[last])
        tiles.append((f"{names[-1][1]} over image", blend.astype(np.uint8), tops[last]))
    panel_width, panel_height = width * zoom, height * zoom
    edge = None if mask is None else _outline(_zoomed(mask, zoom))
    bar_y = MARGIN + TITLE + panel_height + 2
    caption_y = bar_y + BAR + BAR_LABELS + MARGIN
    size = (MARGIN + len(tiles) * (panel_width + MARGIN), caption_y + CAPTION)
    sheet = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for index, (label, pixels, top) in enumerate(tiles):
        x = MARGIN + index * (panel_width + MARGIN)
        outlined = edge is not None and (index == 0 or index == len(tiles) - 1)
        draw.text((x, MARGIN - 2), label + (" + mask" if outlined else ""), fill="black", font=font)
        tile = np.asarray(Image.fromarray(pixels).resize((panel_width, panel_height),
                                                         Image.Resampling.NEAREST)).copy()
        if outlined:
            tile[edge] = MASK_COLOUR
        sheet.paste(Image.fromarray(tile), (x, MARGIN + TITLE))
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


def _shown_size(image, mask):
    """``image`` and ``mask`` reduced to at most :data:`MAX_PANEL` pixels a side."""
    height, width = image.shape[:2]
    factor = MAX_PANEL / max(height, width)
    if factor >= 1.0:
        return image, mask
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    image = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BOX))
    if mask is not None:
        mask = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.Resampling.BOX)) > 0
    return image, mask


def _resized(values, size):
    """A map (h, w) bilinearly resized to ``size`` (height, width) unless it has that size."""
    values = np.asarray(values, np.float32)
    if values.shape == tuple(size):
        return values
    return np.asarray(Image.fromarray(values).resize((size[1], size[0]), Image.Resampling.BILINEAR))


def _zoomed(mask, zoom):
    return np.repeat(np.repeat(np.asarray(mask, bool), zoom, axis=0), zoom, axis=1)


def outline(mask):
    """(H, W) bool -> the mask's boundary: its pixels with a 4-neighbour outside it."""
    inside = np.pad(mask, 1)
    interior = inside[:-2, 1:-1] & inside[2:, 1:-1] & inside[1:-1, :-2] & inside[1:-1, 2:]
    return mask & ~interior


def _outline(mask):
    """:func:`outline`, two pixels wide on panels of 256 px and more (to be seen)."""
    edge = outline(mask)
    if max(mask.shape) >= 256:
        edge = edge | outline(mask & ~edge)
    return edge


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
                  scales=None, mask=None):
    """Save :func:`overlay_image` as ``folder/name``; returns the path."""
    path = os.path.join(folder, name)
    overlay_image(image, maps, title, score, p_value, is_anomaly, scales, mask).save(path, format="PNG")
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
