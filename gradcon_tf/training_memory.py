"""The memory a training run needs, estimated before any work, and the memory the machine has.

The estimate is a bound to refuse sizes that cannot fit, not a prediction: a fixed base
(TensorFlow, the library) plus, per pixel of the network's working size, the activations of one
training batch (the nested tapes of Eq. 6 keep them all) and the images held in memory. The
per-pixel costs were measured with peak RSS on staged networks of 128-512 px (docs/own_images.md).
"""

import math
import os

#: TensorFlow and the library, before any image.
BASE_BYTES = 0.75e9
#: Per image of a training batch, per pixel of the working size: activations and gradients.
BATCH_BYTES_PER_PIXEL = 450
#: Per image, per pixel and channel: the uint8 images and their float32 copies.
IMAGE_BYTES_PER_VALUE = 13


def training_bytes(count, size, channels, batch_size, working_size=None):
    """Bytes to train on ``count`` images of ``size`` (height, width) and ``channels``, the
    network working at ``working_size`` (default ``size``), ``batch_size`` images a step."""
    height, width = size
    work_height, work_width = working_size or size
    batch = min(batch_size, count)
    return (BASE_BYTES + BATCH_BYTES_PER_PIXEL * batch * work_height * work_width
            + IMAGE_BYTES_PER_VALUE * count * height * width * channels)


def largest_square_side(count, channels, batch_size, available, working_size=None):
    """The largest side of square images that :func:`training_bytes` fits in ``available``
    (the network working at the images' size, or at a fixed ``working_size``)."""
    batch = min(batch_size, count)
    per_pixel = IMAGE_BYTES_PER_VALUE * count * channels
    budget = available - BASE_BYTES
    if working_size is None:
        per_pixel += BATCH_BYTES_PER_PIXEL * batch
    else:
        budget -= BATCH_BYTES_PER_PIXEL * batch * working_size[0] * working_size[1]
    return int(math.sqrt(max(budget, 0.0) / per_pixel))


def available_bytes():
    """The memory available to a new process: Linux's MemAvailable, else the physical memory
    (None where neither is known)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None
