"""A calm terminal: TensorFlow's native chatter filtered out, real errors let through.

TensorFlow and its converter print from C++, below Python's logging: CUDA plugin registration errors
on a machine without a GPU when TensorFlow is imported, and notices on every ``.tflite`` conversion.
Code that triggers them runs inside :func:`native_notices_filtered`, which captures the process's
stdout and stderr at the file-descriptor level and prints again every line that is not one of those
known, harmless notices.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import warnings
from typing import Iterator

HARMLESS = re.compile(
    r"Unable to register cu(FFT|DNN|BLAS) factory|TF-TRT Warning: Could not find TensorRT|"
    r"This TensorFlow binary is optimized to use available CPU instructions|"
    r"To enable the following instructions|oneDNN custom operations are on|"
    r"All log messages before absl::InitializeLog\(\) is called are written to STDERR|"
    r"computation placer already registered|Could not find cuda drivers|"
    r"successful NUMA node read|failed call to cuInit|CUDA_ERROR_NO_DEVICE|"
    r"Ignored output_format|Ignored drop_control_dependency|"
    r"fully_quantize: \d+, inference_type: \d+|Created TensorFlow Lite XNNPACK delegate for CPU|"
    r"Estimated count of arithmetic ops|MLIR V1 optimization pass is not enabled")


@contextlib.contextmanager
def captured_output(*fds: int) -> Iterator[dict[int, str]]:
    """Capture what any code, native included, writes to the file descriptors ``fds`` (1: stdout, 2:
    stderr) during the block; the yielded dict holds each one's text once the block has ended."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in fds}
    files = {fd: tempfile.TemporaryFile() for fd in fds}
    text: dict[int, str] = {}
    try:
        for fd, file in files.items():
            os.dup2(file.fileno(), fd)
        yield text
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        for fd, file in files.items():
            file.seek(0)
            text[fd] = file.read().decode("utf-8", "replace")
            file.close()


@contextlib.contextmanager
def native_notices_filtered() -> Iterator[None]:
    """Run the body with the known harmless native notices (and the converter's calibration warning)
    filtered out of stdout and stderr; every other line is printed again afterwards."""
    try:
        with captured_output(1, 2) as text, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
            yield
    finally:
        for fd, output in text.items():
            kept = [line for line in output.splitlines() if line.strip() and not HARMLESS.search(line)]
            if kept:
                print("\n".join(kept), file=sys.stdout if fd == 1 else sys.stderr, flush=True)


def silence_native_logs() -> None:
    """Import TensorFlow (and tf_keras) once with the harmless native notices filtered out."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules:
        return
    with native_notices_filtered():
        import tensorflow as tf
        import tf_keras  # noqa: F401
        tf.get_logger().setLevel("ERROR")  # retracing notices drown the progress bars
