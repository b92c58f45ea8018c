"""Image and mask files <-> arrays: the only module that touches pixel files.

Images become float32 gray arrays in [0, 1]; masks stay raw uint8 so that label conventions
(`labels.py`) decide how to threshold them. Writes are atomic (`axondeepsynth.io`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import tifffile

from axondeepsynth.errors import DataError
from axondeepsynth.io import write_bytes

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
_TIFF = (".tif", ".tiff")
_JPEG_MAGIC = b"\xff\xd8\xff"


@dataclass(frozen=True)
class ImageInfo:
    """What the file held before conversion to float gray."""

    height: int
    width: int
    dtype: str
    channels: int


def _decode(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataError(path, "file not found", "check the dataset root and file name")
    if path.stat().st_size == 0:
        raise DataError(path, "file is empty (0 bytes)", "re-export or remove this file")
    try:
        if path.suffix.lower() in _TIFF:
            array = tifffile.imread(path)
        else:
            array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    except Exception as err:  # tifffile raises many types for corrupt files
        raise DataError(
            path, f"cannot decode image ({err})", "re-export it as PNG or TIFF"
        ) from err
    if array is None or array.size == 0:
        raise DataError(
            path,
            "cannot decode image (corrupt, truncated or not an image)",
            "re-export it as 8/16-bit PNG or TIFF",
        )
    return np.asarray(array)


def _to_gray(array: np.ndarray, path: Path, bgr: bool) -> np.ndarray:
    if array.ndim == 2:
        return array
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        rgb = array[..., :3].astype(np.float32)
        weights = np.array([0.114, 0.587, 0.299] if bgr else [0.299, 0.587, 0.114], np.float32)
        return rgb @ weights
    if array.ndim == 3 and array.shape[0] in (3, 4) and not bgr:  # planar TIFF
        return _to_gray(np.moveaxis(array, 0, -1), path, bgr)
    if array.ndim == 3:  # a stack of pages, or channels other than gray/RGB(A)
        n, (h, w) = (
            (array.shape[-1], array.shape[:2])
            if array.shape[-1] < 5
            else (array.shape[0], array.shape[1:])
        )
        what = f"{n} planes of {w}x{h} px (a stack, or {n} channels)"
    else:
        what = f"unsupported image shape {array.shape}"
    raise DataError(
        path,
        what,
        "save one 2-D grayscale or RGB(A) image per file (e.g. split the stack in Fiji)",
    )


def _load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The decoded array and its checked gray plane (2-D, finite)."""
    raw = _decode(path)
    gray = _to_gray(raw, path, bgr=path.suffix.lower() not in _TIFF)
    if gray.ndim != 2 or min(gray.shape) < 1:
        raise DataError(path, f"unsupported image shape {raw.shape}", "give a 2-D image")
    if raw.dtype.kind == "f" and not np.isfinite(gray).all():
        raise DataError(path, "image has NaN or infinite pixels", "replace them before use")
    if raw.dtype != np.uint8 and gray.min() == gray.max():  # nothing to stretch to [0, 1]
        raise DataError(
            path,
            f"every pixel of this {raw.dtype} image is {gray.flat[0]:g}: a blank frame",
            "re-export it from the microscope's data, or remove it",
        )
    return raw, gray


def info(path: Path) -> ImageInfo:
    """Size, dtype and channel count of an image file (decodes and checks it as read_image
    does, so that what `inspect` passes, a run can read)."""
    raw, gray = _load(Path(path))
    channels = 1 if raw.ndim == 2 else min(raw.shape[-1], raw.shape[0])
    return ImageInfo(gray.shape[0], gray.shape[1], str(raw.dtype), channels)


def read_image(path: Path | str) -> np.ndarray:
    """Read a grayscale/RGB(A) PNG or TIFF as float32 gray in [0, 1].

    8-bit images are divided by 255; deeper or float images are stretched between their 0.5 and
    99.5 percentiles, since 12/16-bit microscopes rarely fill their range.
    """
    gray, to_unit = read_gray(path)
    return to_unit(gray)


def read_gray(path: Path | str) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """An image's gray plane as stored (8-bit stays 8-bit) and the map `read_image` applies to
    it, which takes any part of it: a mosaic is converted block by block, never held as
    floats whole."""
    raw, gray = _load(Path(path))
    if raw.dtype == np.uint8:
        return gray, lambda part: (part / 255.0).astype(np.float32)
    gray = gray.astype(np.float32)
    lo, hi = np.percentile(gray, [0.5, 99.5])
    if hi <= lo:  # a few pixels apart from the rest: _load refused wholly constant ones
        lo, hi = float(gray.min()), float(gray.max())
    return gray, lambda part: np.clip((part - lo) / (hi - lo), 0.0, 1.0)


def as_uint8(array: np.ndarray) -> np.ndarray:
    """A float array in [0, 1] as the uint8 `write_png` stores (uint8 passes unchanged)."""
    if array.dtype == np.uint8:
        return array
    return np.clip(np.rint(np.asarray(array, np.float32) * 255.0), 0, 255).astype(np.uint8)


def read_mask(path: Path | str) -> np.ndarray:
    """Read a mask as raw uint8 gray (0..255); 16-bit masks are scaled down where they use
    values above 255 (a 16-bit 0/1/2 or 0/127/255 mask keeps its values)."""
    path = Path(path)
    raw = _decode(path)
    with path.open("rb") as f:
        if f.read(3) == _JPEG_MAGIC:  # whatever its name says
            raise DataError(
                path,
                "this mask is a JPEG file, whose lossy compression changed its values at every "
                "edge",
                "export the mask losslessly, as PNG or TIFF",
            )
    gray = _to_gray(raw, path, bgr=path.suffix.lower() not in _TIFF)
    if raw.dtype == np.uint16 and gray.max() > 255:
        gray = gray / 257.0
    return np.clip(np.rint(gray), 0, 255).astype(np.uint8)


def write_png(path: Path | str, array: np.ndarray) -> Path:
    """Atomically write a uint8 array (or float in [0, 1]) as a grayscale PNG."""
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(as_uint8(array)))
    if not ok:
        raise DataError(path, f"could not encode a {array.shape} array as PNG")
    return write_bytes(path, encoded.tobytes())
