"""Generate ``frontend_tables.h``: the C front end's constants, taken from :mod:`esc_tf.audio.features`.

The header holds #defines for the shapes and options, and (only where
``FRONTEND_TABLES_IMPLEMENTATION`` is defined before including it) the tables: periodic
Hann window, the mel filters in the sparse CMSIS-DSP layout (first bin, bin count and
packed coefficients per filter), the DCT matrix (MFCC only) and the per-coefficient mean
and std. Every number comes from :func:`esc_tf.audio.features.frontend_tables`, so the device
can never drift from the training front end; ``FRONTEND_FINGERPRINT`` hashes the feature
options and the tables so a stale header can be spotted (the firmware can print it and
the export can compare it).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from esc_tf.artifacts import Normalization, write_text_atomic
from esc_tf.audio.features import check_feature_config, frontend_tables, num_coefficients
from esc_tf.codegen.c_source import banner, float_array, float_literal, int_array, with_guard
from esc_tf.config import Config, options_with_role, value_before

HEADER_NAME = "frontend_tables.h"
LATE_OPTIONS = frozenset(options_with_role("late"))
IMPLEMENTATION_MACRO = "FRONTEND_TABLES_IMPLEMENTATION"


def sparse_mel(mel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense ``[bins, mels]`` filters -> CMSIS ``(filterPos, filterLengths, coefficients)``.

    Per filter: the first nonzero FFT bin, the number of bins up to and including the last
    nonzero one, and those weights, concatenated filter after filter. An all-zero filter
    gets position 0 and length 0.
    """
    mel = np.asarray(mel, np.float32)
    positions, lengths, coefficients = [], [], []
    for column in mel.T:
        nonzero = np.flatnonzero(column)
        if nonzero.size == 0:
            positions.append(0)
            lengths.append(0)
            continue
        first, last = int(nonzero[0]), int(nonzero[-1])
        positions.append(first)
        lengths.append(last - first + 1)
        coefficients.append(column[first:last + 1])
    packed = np.concatenate(coefficients) if coefficients else np.zeros(0, np.float32)
    return np.asarray(positions, np.uint32), np.asarray(lengths, np.uint32), packed.astype(np.float32)


def dense_mel(positions: np.ndarray, lengths: np.ndarray, coefficients: np.ndarray, bins: int) -> np.ndarray:
    """Inverse of :func:`sparse_mel` (for checks)."""
    mel = np.zeros((bins, len(positions)), np.float32)
    offset = 0
    for j, (pos, length) in enumerate(zip(positions, lengths)):
        mel[pos:pos + length, j] = coefficients[offset:offset + length]
        offset += length
    return mel


def fft_twiddles(fft_length: int) -> np.ndarray:
    """``[cos, sin]`` of ``2*pi*k/fft_length`` for ``k < fft_length/2``, interleaved, float32.

    Computed in float64 and rounded once, so the portable C FFT needs no trigonometry.
    """
    angle = 2.0 * np.pi * np.arange(fft_length // 2) / fft_length
    return np.stack([np.cos(angle), np.sin(angle)], axis=1).ravel().astype(np.float32)


def _feature_options(config: Config) -> dict:
    """The feature options a fingerprint hashes: a late option at the value that does what esc-tf did before
    it existed is left out, so a header exported then keeps its fingerprint."""
    features = {name: value for name, value in asdict(config.features).items()
                if not (f"features.{name}" in LATE_OPTIONS and value == value_before(f"features.{name}"))}
    return {"features": features, "sample_rate": config.audio.sample_rate}


def frontend_fingerprint(config: Config, normalization: Normalization) -> str:
    """First 16 hex digits of the sha256 of the feature options and every exported table."""
    digest = hashlib.sha256(json.dumps(_feature_options(config), sort_keys=True).encode())
    for name, table in sorted(frontend_tables(config, normalization).items()):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(table, "<f4").tobytes())
    return digest.hexdigest()[:16]


def _defines(config: Config, fingerprint: str, mel_total: int) -> str:
    f = config.features
    values = [
        ("FRONTEND_SAMPLE_RATE", str(config.audio.sample_rate)),
        ("FRONTEND_FRAME_LENGTH", str(f.frame_length)),
        ("FRONTEND_HOP_LENGTH", str(f.hop_length)),
        ("FRONTEND_FFT_LENGTH", str(f.fft_length)),
        ("FRONTEND_NUM_FFT_BINS", str(f.fft_length // 2 + 1)),
        ("FRONTEND_NUM_MEL_BINS", str(f.num_mel_bins)),
        ("FRONTEND_NUM_COEFFS", str(num_coefficients(f))),
        ("FRONTEND_FEATURES_KIND_MFCC", "1" if f.kind == "mfcc" else "0"),
        ("FRONTEND_LOG_OFFSET", float_literal(f.log_offset)),
        ("FRONTEND_PEAK_NORMALIZE", "1" if f.peak_normalize else "0"),
        ("FRONTEND_MEL_COEFS_TOTAL", str(mel_total)),
        ("FRONTEND_FINGERPRINT", f'"{fingerprint}"'),
    ]
    width = max(len(name) for name, _ in values)
    lines = [f"#define {name:<{width}} {value}" for name, value in values]
    return "\n".join(lines) + "\n"


def _arrays(tables: dict[str, np.ndarray], positions: np.ndarray, lengths: np.ndarray,
            coefficients: np.ndarray) -> str:
    parts = [
        "// Periodic Hann window, FRONTEND_FRAME_LENGTH samples.\n",
        float_array("frontend_window", tables["window"]),
        "\n// Mel filters, CMSIS-DSP layout: filter j weights FFT bins\n"
        "// [frontend_mel_pos[j], frontend_mel_pos[j] + frontend_mel_len[j]).\n",
        int_array("frontend_mel_pos", positions, "uint16_t"),
        int_array("frontend_mel_len", lengths, "uint16_t"),
        float_array("frontend_mel_coefs", coefficients if coefficients.size else np.zeros(1)),
    ]
    parts += ["\n#if !defined(FRONTEND_USE_CMSIS_DSP)\n"
              "// Portable FFT twiddles: cos, sin of 2*pi*k/FRONTEND_FFT_LENGTH, k < FFT/2, interleaved.\n",
              float_array("frontend_twiddle", fft_twiddles(len(tables["window"]))),
              "#endif\n"]
    if "dct" in tables:
        parts += ["\n// DCT-II, row-major [FRONTEND_NUM_COEFFS][FRONTEND_NUM_MEL_BINS]: mfcc = D @ log_mel.\n",
                  float_array("frontend_dct", tables["dct"])]
    parts += ["\n// Per-coefficient normalisation: (x - mean) / std.\n",
              float_array("frontend_mean", tables["mean"]),
              float_array("frontend_std", tables["std"])]
    return "".join(parts)


def frontend_header(config: Config, normalization: Normalization) -> str:
    """The text of ``frontend_tables.h`` for ``config`` and ``normalization``."""
    check_feature_config(config.features, config.audio)
    tables = frontend_tables(config, normalization)
    coeffs = num_coefficients(config.features)
    if tables["mean"].shape != (coeffs,) or tables["std"].shape != (coeffs,):
        raise ValueError(f"normalization must have {coeffs} means and stds, got "
                         f"{tables['mean'].shape} and {tables['std'].shape}")
    positions, lengths, coefficients = sparse_mel(tables["mel"])
    fingerprint = frontend_fingerprint(config, normalization)
    head = (banner("Feature front end tables (firmware_stub/frontend)")
            + f"// Feature fingerprint {fingerprint}: sha256 of the feature options and tables.\n"
            + f"// Macros always; the tables only where {IMPLEMENTATION_MACRO} is defined.\n\n")
    macros = with_guard(HEADER_NAME, "#include <stdint.h>\n\n" + _defines(config, fingerprint, coefficients.size))
    guard = "ESC_TF_FRONTEND_TABLES_ARRAYS_"
    arrays = (f"\n#if defined({IMPLEMENTATION_MACRO}) && !defined({guard})\n#define {guard}\n\n"
              + _arrays(tables, positions, lengths, coefficients)
              + f"\n#endif  // {IMPLEMENTATION_MACRO}\n")
    return head + macros + arrays


def write_frontend_header(config: Config, normalization: Normalization, path: str | Path) -> Path:
    """Write ``frontend_tables.h`` to ``path`` atomically; returns the path."""
    path = Path(path)
    write_text_atomic(path, frontend_header(config, normalization))
    return path
