"""A PNG contact sheet of the most anomalous images, each with its rank, score and name (Pillow)."""

import heapq
import itertools
import math
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

MIN_TILE = 112  # images are upscaled (nearest) by a whole factor to at least this many pixels a side
COLUMNS = 8
CAPTION = 30  # pixels under each image: two lines of text
MARGIN = 8
ANOMALY_COLOUR = (200, 0, 0)


class TopImages:
    """The ``k`` highest-scoring (result, image) pairs seen so far; holds at most ``k`` images."""

    def __init__(self, k):
        self.k = k
        self._heap = []
        self._arrival = itertools.count()

    def add(self, result, image):
        rank = -math.inf if math.isnan(result.score) else result.score
        item = (rank, -next(self._arrival), result, image)  # on ties the earlier image stays
        if len(self._heap) < self.k:
            heapq.heappush(self._heap, item)
        else:
            heapq.heappushpop(self._heap, item)

    def ranked(self):
        """[(result, image)], highest score first."""
        return [(r, image) for _, _, r, image in sorted(self._heap, key=lambda item: item[:2], reverse=True)]


def layout(count, image_shape):
    """(scale, columns, cell width, cell height, sheet size) for ``count`` images of ``image_shape``."""
    height, width = image_shape[:2]
    scale = max(1, math.ceil(MIN_TILE / max(height, width)))
    columns = min(count, COLUMNS)
    rows = math.ceil(count / columns)
    cell_width, cell_height = width * scale + MARGIN, height * scale + CAPTION + MARGIN
    size = (MARGIN + columns * cell_width, MARGIN + rows * cell_height)
    return scale, columns, cell_width, cell_height, size


def write_sheet(path, ranked):
    """Save ``ranked`` [(result, uint8 HWC image)] as a PNG grid, row by row, best first."""
    scale, columns, cell_width, cell_height, size = layout(len(ranked), ranked[0][1].shape)
    sheet = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for index, (result, image) in enumerate(ranked):
        x = MARGIN + (index % columns) * cell_width
        y = MARGIN + (index // columns) * cell_height
        pixels = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image
        tile_size = (image.shape[1] * scale, image.shape[0] * scale)
        tile = Image.fromarray(pixels).resize(tile_size, Image.Resampling.NEAREST)
        sheet.paste(tile, (x, y))
        colour = ANOMALY_COLOUR if result.is_anomaly else "black"
        text_y = y + tile.height + 2
        draw.text((x, text_y), f"#{index + 1} score {result.score:.5g}", fill=colour, font=font)
        name = fit(draw, result.path, tile.width, font)
        draw.text((x, text_y + CAPTION // 2), name, fill="black", font=font)
    sheet.save(path, format="PNG")


def fit(draw, path, width, font):
    """The file name of ``path``, cut from the left with '...' until it is at most ``width`` pixels."""
    name = text = os.path.basename(path)
    while len(text) > 1 and draw.textlength(text, font=font) > width:
        name = name[1:]
        text = "..." + name
    return text
