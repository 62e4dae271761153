"""From decoded images to the model's pixel tensors, outside the image processor.

The checkpoint's image processor is the reference, and for a fixed-size processor
(SigLIP's: resize to ``height x width``, rescale, normalize) its work splits in two:

* the **resize**, which is the costly part: done here with the very call the processor
  makes (``PIL.Image.resize`` with its resampling filter), on worker processes, to
  ``uint8`` arrays at model size; or on the GPU with torch's antialiased interpolation,
  which is within resampling noise of it;
* the **rescale and normalize**, which map each channel value 0-255 to one float: done
  with a look-up table of 3 x 256 entries that the processor itself computes once, so
  the result is bit-for-bit the processor's, on any device.

Processors that do more (CLIP's shortest-edge resize and centre crop) get no
:class:`PixelSpec`; the encoder then calls the processor as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import torch
    from PIL import Image

__all__ = [
    "PixelSpec",
    "apply_orientation",
    "resize_many_on_device",
    "resize_on_device",
    "resize_with_pil",
]

# PIL's resampling filters (Image.Resampling values) that torch's interpolate can follow
# on a GPU; the others (LANCZOS, BOX, HAMMING) keep the CPU path.
_TORCH_MODES = {0: "nearest", 2: "bilinear", 3: "bicubic"}


@dataclass(frozen=True, kw_only=True)
class PixelSpec:
    """What a fixed-size image processor does, in a form worker processes can use.

    Attributes:
        height: The model's input height in pixels.
        width: Its input width.
        resample: The processor's PIL resampling filter (``Image.Resampling`` value).
        table: ``(3, 256)`` float32: the processor's output for each channel value.
    """

    height: int
    width: int
    resample: int
    table: npt.NDArray[np.float32]

    @classmethod
    def from_processor(cls, image_processor: Any) -> PixelSpec | None:
        """The spec of a resize-rescale-normalize processor, else None.

        The table comes from running the processor itself (resize off) on an image that
        holds every value 0-255 in every channel.
        """
        size = getattr(image_processor, "size", None)
        height = _field(size, "height")
        width = _field(size, "width")
        resample = getattr(image_processor, "resample", None)
        if (
            not height
            or not width
            or getattr(image_processor, "do_resize", True) is False
            or getattr(image_processor, "do_center_crop", None)
            or getattr(image_processor, "do_pad", None)
            or resample is None
        ):
            return None
        ramp = np.repeat(np.arange(256, dtype=np.uint8).reshape(16, 16, 1), 3, axis=2)
        try:
            output = image_processor(
                images=[ramp],
                do_resize=False,
                input_data_format="channels_last",
                return_tensors="pt",  # what every backend returns (PIL, torchvision)
            )["pixel_values"]
            values = np.asarray(output.float().numpy(), dtype=np.float32)
        except Exception:  # noqa: BLE001 - a processor we cannot read keeps its own path
            return None
        if values.shape != (1, 3, 16, 16):
            return None
        table = np.ascontiguousarray(values[0].reshape(3, 256))
        table.flags.writeable = False
        return cls(height=int(height), width=int(width), resample=int(resample), table=table)

    @property
    def device_mode(self) -> str | None:
        """torch's interpolation mode for this resample filter, if it has one."""
        return _TORCH_MODES.get(self.resample)

    def to_model_input(
        self, pixels: torch.Tensor, table: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``(n, H, W, 3)`` uint8 pixels to the processor's ``(n, 3, H, W)`` values.

        Args:
            pixels: The images at model size, on any device.
            table: :meth:`device_table` for that device and dtype (built when missing).
        """
        import torch

        if table is None:
            table = self.device_table(pixels.device, torch.float32)
        # made on the device: no copy from the host for every batch
        offsets = torch.arange(0, 768, 256, dtype=torch.int32, device=pixels.device)
        # One gather per value: bit-exact with the processor, and cheap on any device.
        values = torch.nn.functional.embedding(pixels.to(torch.int32) + offsets, table)
        return values.squeeze(-1).permute(0, 3, 1, 2).contiguous()

    def device_table(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """The look-up table as a ``(768, 1)`` tensor on ``device``, in ``dtype``."""
        import torch

        return torch.from_numpy(self.table.reshape(768, 1).copy()).to(device=device, dtype=dtype)


def _field(size: Any, name: str) -> int | None:
    if size is None:
        return None
    value = size.get(name) if isinstance(size, dict) else getattr(size, name, None)
    return int(value) if isinstance(value, (int, float)) and value > 0 else None


def resize_with_pil(image: Image.Image, spec: PixelSpec) -> npt.NDArray[np.uint8]:
    """An upright RGB image resized exactly as the PIL image processor does it."""
    resized = image.resize((spec.width, spec.height), resample=spec.resample)
    return np.array(resized, dtype=np.uint8)  # writable: torch.from_numpy takes it as is


def apply_orientation(pixels: torch.Tensor, orientation: int) -> torch.Tensor:
    """Turn ``(C, H, W)`` pixels upright for an EXIF orientation (1-8), as Pillow does."""
    import torch

    if orientation == 2:  # mirrored
        return pixels.flip(-1)
    if orientation == 3:  # upside down
        return pixels.flip(-2, -1)
    if orientation == 4:  # mirrored upside down
        return pixels.flip(-2)
    if orientation == 5:  # Pillow's TRANSPOSE: mirrored across the main diagonal
        return pixels.transpose(-2, -1)
    if orientation == 6:  # Pillow's ROTATE_270: a quarter turn clockwise
        return torch.rot90(pixels, -1, dims=(-2, -1))
    if orientation == 7:  # Pillow's TRANSVERSE: mirrored across the other diagonal
        return pixels.transpose(-2, -1).flip(-2, -1)
    if orientation == 8:  # Pillow's ROTATE_90: a quarter turn counter-clockwise
        return torch.rot90(pixels, 1, dims=(-2, -1))
    return pixels


def resize_on_device(pixels: torch.Tensor, spec: PixelSpec) -> torch.Tensor:
    """``(3, H, W)`` uint8 pixels to ``(height, width, 3)`` uint8 at model size.

    torch's antialiased bicubic (and bilinear) interpolation uses the same kernels as
    Pillow's, so results differ from the processor by rounding only.
    """
    (resized,) = resize_many_on_device([pixels], spec)
    assert resized is not None
    return resized


def resize_many_on_device(
    images: Sequence[torch.Tensor | None], spec: PixelSpec
) -> list[torch.Tensor | None]:
    """:func:`resize_on_device` for many images, one interpolation per distinct size.

    Photos from one camera share a size, so a batch costs a few kernel launches rather
    than a few per image. ``None`` entries stay ``None``.
    """
    import torch

    mode = spec.device_mode
    if mode is None:
        raise ValueError(f"no device resize for PIL resample filter {spec.resample}")
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, image in enumerate(images):
        if image is not None:
            groups.setdefault(tuple(image.shape), []).append(i)
    resized: list[torch.Tensor | None] = [None] * len(images)
    for shape, members in groups.items():
        stacked = torch.stack([images[i] for i in members]).to(torch.float32)  # type: ignore[misc]
        if shape[-2:] != (spec.height, spec.width):
            stacked = torch.nn.functional.interpolate(
                stacked,
                size=(spec.height, spec.width),
                mode=mode,
                antialias=mode != "nearest",
                align_corners=False if mode != "nearest" else None,
            )
        pixels = stacked.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        for row, i in enumerate(members):
            resized[i] = pixels[row]
    return resized
