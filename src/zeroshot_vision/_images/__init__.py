"""Images, from any source to the model's pixels.

The modules follow the data:

* :mod:`~zeroshot_vision._images.loading`: any source (path, bytes, PIL image, array) to
  an upright 8-bit RGB image, bad files turned into clear errors; the names below.
* :mod:`~zeroshot_vision._images.pixels`: decoded images to the model's pixel tensors,
  bit for bit what the checkpoint's image processor makes.
* :mod:`~zeroshot_vision._images.feed`: batches of those pixels prepared ahead of the
  model, in input order (:class:`~zeroshot_vision._images.feed.PixelFeed`).
* :mod:`~zeroshot_vision._images.pool`: the decoding processes an encoder keeps.
* :mod:`~zeroshot_vision._images.jpeg`: which JPEGs the GPU decodes, and decoding them.

Only :mod:`~zeroshot_vision._images.loading` is imported here: the others are loaded by
the encoder when it needs them.
"""

from zeroshot_vision._images.loading import (
    DEFAULT_MAX_PIXELS,
    HEIF_SUFFIXES,
    IMAGE_SUFFIXES,
    UNRECOGNIZED_FORMAT,
    DecodeCost,
    decode_cost,
    describe_source,
    is_image_file,
    iter_loaded,
    load_image,
    register_heif,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "HEIF_SUFFIXES",
    "IMAGE_SUFFIXES",
    "UNRECOGNIZED_FORMAT",
    "DecodeCost",
    "decode_cost",
    "describe_source",
    "is_image_file",
    "iter_loaded",
    "load_image",
    "register_heif",
]
