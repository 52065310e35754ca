"""onnxruntime sessions configured for a small CPU box."""
from __future__ import annotations

from pathlib import Path

import onnxruntime as ort

ort.set_default_logger_severity(3)  # the packs' graphs warn about initializers at every load


def make_session(model_path: Path | str, threads: int = 0) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(model_path), sess_options=opts,
                                providers=["CPUExecutionProvider"])
