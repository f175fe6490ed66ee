"""Encoding images: the encoder for each output format.

JPEG, TIFF and WebP are OpenCV's (its encoders are several times faster than Pillow's at equal
size, and it writes 16-bit TIFF; it is imported at the first such image, see ``_cv2.py``); PNG,
the default and the format most of our time goes into, is ``png.py``'s, about four times faster
than OpenCV's. Everything here works on one 2D image
(optionally with colour channels) and releases the GIL, so slices can be encoded on threads.
Resampling to the output grid, the step before, is ``resample.py``'s.
"""

from __future__ import annotations

import numpy as np

from ._cv2 import cv2
from .errors import InputError, OptionError
from .png import encode_png
from .types import ImageFormat

EXTENSIONS = {
    ImageFormat.PNG: ".png",
    ImageFormat.JPG: ".jpg",
    ImageFormat.TIF: ".tif",
    ImageFormat.WEBP: ".webp",
}


def encode(image: np.ndarray, fmt: ImageFormat, quality: int | None = None) -> bytes:
    """Encode a grey (H, W) or RGB/RGBA (H, W, C) uint8/uint16 image."""
    if fmt is ImageFormat.PNG:
        return encode_png(image)
    if image.ndim == 3:
        if fmt is ImageFormat.JPG and image.shape[2] == 4:
            image = image[:, :, :3]
        code = cv2.COLOR_RGB2BGR if image.shape[2] == 3 else cv2.COLOR_RGBA2BGRA
        image = cv2.cvtColor(image, code)
    params: list[int] = []
    if fmt is ImageFormat.JPG:
        params = [cv2.IMWRITE_JPEG_QUALITY, quality or 95]
    elif fmt is ImageFormat.WEBP:
        params = [cv2.IMWRITE_WEBP_QUALITY, quality or 90]
    if image.dtype == np.uint16 and fmt is not ImageFormat.TIF:
        raise OptionError(f"format: {fmt.value} cannot store 16-bit images; use png or tif")
    ok, buf = cv2.imencode(EXTENSIONS[fmt], image, params)
    if not ok:  # pragma: no cover - OpenCV reports failures this way for odd inputs
        raise OptionError(f"format: OpenCV could not encode a {image.dtype} image as {fmt.value}")
    return buf.tobytes()


def decode(data: bytes | np.ndarray) -> np.ndarray:
    """Decode an image keeping its bit depth; colour comes back as RGB(A)."""
    arr = np.frombuffer(data, np.uint8) if isinstance(data, bytes) else data
    img = cv2.imdecode(arr, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError("not a readable image")
    if img.ndim == 3:
        code = cv2.COLOR_BGR2RGB if img.shape[2] == 3 else cv2.COLOR_BGRA2RGBA
        img = cv2.cvtColor(img, code)
    return img
