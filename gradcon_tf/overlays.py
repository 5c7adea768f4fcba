"""Anomaly-map overlays as PNGs: the image, its maps as heat, and the map over the image.

numpy and Pillow only (no TensorFlow), so that the LiteRT-only edge scorer uses this module too
(``edge_demo/overlays.py`` is a link to this file).
"""

import math
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

MIN_PANEL = 112  # maps and images are upscaled (nearest) by a whole factor to this many pixels
MARGIN = 6
CAPTION = 28  # two lines of text under the panels
ANOMALY_COLOUR = (200, 0, 0)
#: Panels after the image: (map output name, title).
PANELS = (("recon_map", "recon error"), ("grad_map", "gradient"), ("score_map", "GradCon"))


def heat(values, top):
    """(H, W) values -> (H, W, 3) uint8, black -> red -> yellow -> white over [0, ``top``]."""
    level = np.clip(np.nan_to_num(values / top if top > 0 else values * 0.0), 0.0, 1.0) * 3.0
    rgb = np.stack([level, level - 1.0, level - 2.0], axis=-1)
    return (255 * np.clip(rgb, 0.0, 1.0)).astype(np.uint8)


def _rgb(image):
    image = np.asarray(image)
    return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3]


def overlay_image(image, maps, title, score, p_value=math.nan, is_anomaly=None):
    """A PIL image: ``image`` (uint8 HWC), each map of ``maps`` ({name: (H, W)}) in
    :data:`PANELS` order as heat, then the last map blended over the image; caption ``title``,
    score, p-value and decision. Each map's heat spans 0 to its own 99th percentile."""
    height, width = image.shape[:2]
    scale = max(1, math.ceil(MIN_PANEL / max(height, width)))
    names = [(name, label) for name, label in PANELS if name in maps]
    tiles = [("image", _rgb(image))]
    for name, label in names:
        tiles.append((label, heat(maps[name], float(np.percentile(maps[name], 99)))))
    if names:
        last = heat(maps[names[-1][0]], float(np.percentile(maps[names[-1][0]], 99)))
        blend = 0.5 * _rgb(image).astype(np.float32) + 0.5 * last.astype(np.float32)
        tiles.append((f"{names[-1][1]} over image", blend.astype(np.uint8)))
    panel_width, panel_height = width * scale, height * scale
    size = (MARGIN + len(tiles) * (panel_width + MARGIN), 2 * MARGIN + panel_height + 12 + CAPTION)
    sheet = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for index, (label, pixels) in enumerate(tiles):
        x = MARGIN + index * (panel_width + MARGIN)
        draw.text((x, MARGIN - 2), label, fill="black", font=font)
        tile = Image.fromarray(pixels).resize((panel_width, panel_height), Image.Resampling.NEAREST)
        sheet.paste(tile, (x, MARGIN + 12))
    decision = {True: "ANOMALY", False: "normal", None: ""}[is_anomaly]
    p_text = "" if math.isnan(p_value) else f"  p-value {p_value:.4f}"
    y = 2 * MARGIN + 12 + panel_height
    draw.text((MARGIN, y), title, fill="black", font=font)
    draw.text(
        (MARGIN, y + CAPTION // 2), f"score {score:.5g}{p_text}  {decision}",
        fill=ANOMALY_COLOUR if is_anomaly else "black", font=font,
    )
    return sheet


def overlay_name(path, index):
    """``index``-th image from ``path`` -> a PNG file name: ``0003_name.png``."""
    stem = os.path.splitext(os.path.basename(path))[0] or "image"
    return f"{index:04d}_{stem}.png"


def write_overlay(folder, name, image, maps, title, score, p_value=math.nan, is_anomaly=None):
    """Save :func:`overlay_image` as ``folder/name``; returns the path."""
    path = os.path.join(folder, name)
    overlay_image(image, maps, title, score, p_value, is_anomaly).save(path, format="PNG")
    return path
