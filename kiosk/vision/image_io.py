"""Reading images from files with clear errors."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..errors import ImageError


def read_image(path: str | Path) -> np.ndarray:
    """BGR uint8 image. Raises ImageError (missing, empty, not an image)."""
    p = Path(path)
    if not p.is_file():
        raise ImageError(f"找不到图片文件：{p}", detail=f"no such file: {p}")
    data = np.fromfile(str(p), dtype=np.uint8)
    if data.size == 0:
        raise ImageError(f"图片文件是空的：{p}", detail=f"empty file: {p}")
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        raise ImageError(f"无法读取图片（文件损坏或不是图片）：{p}",
                         detail=f"cv2.imdecode failed for {p} ({data.size} bytes)")
    return img
