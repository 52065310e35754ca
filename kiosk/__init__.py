"""长寿食堂 face-checkout kiosk."""

import os

# OpenCV 5 warns at every model load that DNN targets are not supported; keep logs readable.
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

__version__ = "0.1.0"
