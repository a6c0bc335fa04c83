"""esc-tf: ESC-50 environmental sound classification, from WAV files to a microcontroller.

tfmot only accepts Keras 2 models, so the legacy Keras (``tf_keras``) must be selected
before TensorFlow is imported anywhere; importing any ``esc_tf`` module does that.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
