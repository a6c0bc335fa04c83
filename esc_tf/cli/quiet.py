"""A calm terminal: TensorFlow's native start-up chatter filtered out, real errors let through.

On a machine without a GPU, importing TensorFlow prints CUDA plugin registration errors and
CPU-feature notices from C++, before Python logging exists. The import runs here with the process's
stderr captured at the file-descriptor level; every captured line that is not one of those known,
harmless notices is printed again.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile

HARMLESS = re.compile(
    r"Unable to register cu(FFT|DNN|BLAS) factory|TF-TRT Warning: Could not find TensorRT|"
    r"This TensorFlow binary is optimized to use available CPU instructions|"
    r"To enable the following instructions|oneDNN custom operations are on|"
    r"All log messages before absl::InitializeLog\(\) is called are written to STDERR|"
    r"computation placer already registered|Could not find cuda drivers|"
    r"successful NUMA node read|cuda_executor|Unable to register|"
    r"failed call to cuInit|CUDA_ERROR_NO_DEVICE")


def silence_native_logs() -> None:
    """Import TensorFlow (and tf_keras) once with the harmless native notices filtered out."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf
            import tf_keras  # noqa: F401
            tf.get_logger().setLevel("ERROR")  # retracing notices drown the progress bars
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode("utf-8", "replace").splitlines():
                if line.strip() and not HARMLESS.search(line):
                    print(line, file=sys.stderr)
