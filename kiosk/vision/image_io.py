"""Reading images from files with clear errors, bounded before decoding.

The file's size is checked first, then its header is read with Pillow (which
reads only the header on ``Image.open``) for the format and the dimensions; a
picture of more than ``IMAGE_MAX_PIXELS`` is refused before a single pixel is
decoded. Only then does OpenCV decode it (BGR, EXIF orientation applied)."""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from kiosk.errors import ImageError
from kiosk.limits import IMAGE_MAX_BYTES, IMAGE_MAX_PIXELS

# OpenCV's own decoder limit as a second line (read on its first decode in a process)
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(IMAGE_MAX_PIXELS))
# formats both Pillow (header) and OpenCV (pixels) read the same way
FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "BMP": "BMP", "WEBP": "WebP", "TIFF": "TIFF", "PPM": "PPM/PGM"}


@dataclass(frozen=True)
class ImageHeader:
    format: str
    width: int
    height: int
    size_bytes: int


def check_image_file(path: str | Path, *, max_bytes: int = IMAGE_MAX_BYTES,
                     max_pixels: int = IMAGE_MAX_PIXELS) -> ImageHeader:
    """The header of an image file, after checking size and pixel count. Raises
    ImageError (missing, empty, too large, not an image); decodes nothing."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise ImageError(f"找不到图片文件：{p}", detail=f"no such file: {p}")
    size = p.stat().st_size
    if size == 0:
        raise ImageError(f"图片文件是空的：{p}", detail=f"empty file: {p}")
    if size > max_bytes:
        raise ImageError(f"图片文件太大（{size / 1024 / 1024:.1f} MB，上限 {max_bytes // (1024 * 1024)} MB）：{p}",
                         detail=f"{p}: {size} bytes > limit {max_bytes}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # Pillow's DecompressionBombWarning: we check ourselves
            with Image.open(p) as im:         # reads the header only
                fmt, (w, h) = im.format or "?", im.size
    except Image.DecompressionBombError as exc:   # Pillow's own limit (2 x its MAX_IMAGE_PIXELS)
        raise ImageError(f"图片太大（超过 {max_pixels // 1_000_000} 百万像素的上限）：{p}", detail=f"{p}: {exc}") from None
    except UnidentifiedImageError as exc:
        raise ImageError(f"无法读取图片（文件损坏或不是图片）：{p}", detail=f"{p}: {exc}") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # Pillow's plugins raise these for a broken header
        raise ImageError(f"无法读取图片（文件损坏或不是图片）：{p}", detail=f"{p}: {type(exc).__name__}: {exc}") from None
    if fmt not in FORMATS:
        raise ImageError(f"不支持的图片格式 {fmt}（请用 JPEG 或 PNG）：{p}", detail=f"{p}: format {fmt}")
    if w <= 0 or h <= 0:
        raise ImageError(f"图片尺寸无效（{w}×{h}）：{p}", detail=f"{p}: size {w}x{h}")
    if w * h > max_pixels:
        raise ImageError(f"图片太大（{w}×{h} 像素，上限 {max_pixels // 1_000_000} 百万像素）：{p}",
                         detail=f"{p}: {w}x{h} = {w * h} pixels > limit {max_pixels}")
    return ImageHeader(fmt, w, h, size)


def read_image(path: str | Path) -> np.ndarray:
    """BGR uint8 image. Raises ImageError (missing, empty, too large, not an image)."""
    p = Path(path)
    head = check_image_file(p)
    try:
        data = np.fromfile(str(p), dtype=np.uint8)
    except OSError as exc:
        raise ImageError(f"无法读取图片文件：{p}", detail=f"{p}: {exc}") from None
    try:
        img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise ImageError(f"无法读取图片（文件损坏或不是图片）：{p}", detail=f"cv2.imdecode: {exc}") from None
    if img is None or img.size == 0:
        raise ImageError(f"无法读取图片（文件损坏或不是图片）：{p}",
                         detail=f"cv2.imdecode failed for {p} ({data.size} bytes, {head.format} {head.width}x{head.height})")
    if img.shape[0] * img.shape[1] > IMAGE_MAX_PIXELS:   # a header that lied to Pillow
        raise ImageError(f"图片太大（{img.shape[1]}×{img.shape[0]} 像素）：{p}", detail=f"{p}: decoded {img.shape}")
    return img


def check_video_capture(cap, what: str, *, max_pixels: int = IMAGE_MAX_PIXELS) -> None:
    """A video (file, camera or stream) whose frames would exceed the pixel limit is
    refused from the size its container declares, before a frame is decoded."""
    w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
    h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
    if w * h > max_pixels:
        raise ImageError(f"视频画面太大（{w}×{h} 像素，上限 {max_pixels // 1_000_000} 百万像素）：{what}",
                         detail=f"{what}: frames of {w}x{h} = {w * h} pixels > limit {max_pixels}")
