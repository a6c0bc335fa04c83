"""The C front end (firmware_stub/frontend) against tf.signal, CMSIS-DSP and itself.

Parity criterion, stated once: on raw (un-normalised) features, elementwise
``|c - tf| <= TOL * max(1, |tf|)``. Normalised outputs are held to the same bound in raw
units, ``|c_n - tf_n| * std <= TOL * max(1, |tf_raw|)`` (dividing by std scales the error
and nothing else). ``TOL`` is 1e-5, about 1.5 times the largest error measured (6.5e-6); the
1024-point, 128-mel front end and the CMSIS-DSP build have their own bounds, as measured
(firmware_stub/frontend/README.md lists every measurement). Test signals are tones plus noise 20-30 dB below them at amplitudes
from 0.9 down to 1e-5: both tf.signal and the C code are float32, and a noiseless tone
leaves mel bands at float32 rounding level, where log() makes any two float32 FFTs
disagree (for a 0.3-amplitude 440 Hz tone tf.signal itself was 0.09 away from float64).

Every build compiles a copy of the sources next to a freshly generated header, so a
``frontend_tables.h`` committed in firmware_stub/frontend never shadows the one under test.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import shutil
import subprocess
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from esc_tf import artifacts
from esc_tf.audio import features as F
from esc_tf.codegen.frontend_tables import (
    dense_mel,
    frontend_fingerprint,
    frontend_header,
    sparse_mel,
    write_frontend_header,
)
from esc_tf.config import Config, load_config, with_values
from esc_tf.runtime import predictors
from tests.conftest import MFCC_RECIPE

SOURCES = Path(__file__).resolve().parents[2] / "firmware_stub" / "frontend"
CFLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic"]
TOL = 1e-5  # worst measured 6.5e-6 (the default front end)
# A 1024-point FFT into 128 mels sums more float32 terms per band: worst measured 1.7e-5.
TOL_BY_CONFIG = {"logmel_128mel_hop256": 2.5e-5}
TOL_CMSIS = 2e-5  # CMSIS-DSP's arm_rfft_fast_f32 (another FFT) vs tf.signal: worst measured 1.2e-5
SR = 16000

# Shim for the CMSIS build: only the declarations frontend.c uses; the definitions come
# from the CMSIS-DSP library compiled into the cmsisdsp wheel.
ARM_MATH_SHIM = """\
#ifndef SHIM_ARM_MATH_H_
#define SHIM_ARM_MATH_H_
#include <stdint.h>
typedef float float32_t;
typedef enum { ARM_MATH_SUCCESS = 0, ARM_MATH_ARGUMENT_ERROR = -1 } arm_status;
typedef struct { union { void *p; double d; unsigned char bytes[256]; } opaque; } arm_rfft_fast_instance_f32;
arm_status arm_rfft_fast_init_f32(arm_rfft_fast_instance_f32 *S, uint16_t fftLen);
arm_status arm_rfft_fast_init_128_f32(arm_rfft_fast_instance_f32 *S);
arm_status arm_rfft_fast_init_256_f32(arm_rfft_fast_instance_f32 *S);
arm_status arm_rfft_fast_init_512_f32(arm_rfft_fast_instance_f32 *S);
arm_status arm_rfft_fast_init_1024_f32(arm_rfft_fast_instance_f32 *S);
void arm_rfft_fast_f32(const arm_rfft_fast_instance_f32 *S, float32_t *p, float32_t *pOut, uint8_t ifftFlag);
void arm_cmplx_mag_f32(const float32_t *pSrc, float32_t *pDst, uint32_t numSamples);
#endif
"""

QUANTIZE_MAIN = """\
#include <stdio.h>
#include <stdlib.h>
#include "frontend.h"
int main(int argc, char **argv) {
  static float x[4096];
  static int8_t q[4096];
  int n = (int)fread(x, sizeof(float), 4096, stdin);
  if (argc != 3) return 2;
  frontend_quantize(x, n, strtof(argv[1], NULL), atoi(argv[2]), q);
  fwrite(q, 1, (size_t)n, stdout);
  return 0;
}
"""


# --------------------------------------------------------------------------- helpers

def compiler() -> str:
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no C compiler found")


def make_config(kind: str = "mfcc", **features) -> Config:
    """The 512/256 front end of configs/mfcc_cnn.yaml with ``features`` changed, without level normalisation:
    the front end works frame by frame at the samples' level, and a window's level is set by the stream
    (feature_stream.c, tested in tests/test_firmware.py and tests/test_pipeline.py)."""
    changes = {"kind": kind, "peak_normalize": False, **features}
    return with_values(load_config(MFCC_RECIPE), {f"features.{name}": value for name, value in changes.items()})


def signal(seconds: float, amplitude: float, noise: float, seed: int) -> np.ndarray:
    """Two tones (one gliding) plus white noise ``noise * amplitude`` rms, in [-1, 1)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    tones = 0.7 * np.sin(2 * np.pi * rng.uniform(200, 600) * t + rng.uniform(0, 6.3))
    tones += 0.3 * np.sin(2 * np.pi * rng.uniform(2000, 4000) * t * (1 + 0.05 * t))
    x = amplitude * tones + noise * amplitude * rng.standard_normal(t.size)
    return np.clip(x, -1.0, 1.0 - 2.0 ** -15).astype(np.float32)


SIGNALS = [(0.9, 0.03), (0.3, 0.1), (0.05, 0.03), (3e-3, 0.1), (1e-5, 0.03)]


def norm_for(config: Config) -> artifacts.Normalization:
    """Stats measured on a few synthetic clips, like training would."""
    waves = np.stack([signal(1.0, a, n, seed=100 + i) for i, (a, n) in enumerate(SIGNALS)])
    return F.normalization_stats(waves, config)


@dataclasses.dataclass
class Build:
    exe: Path
    config: Config
    norm: artifacts.Normalization

    def run(self, samples: np.ndarray, *args: str, trace: bool = False) -> tuple[np.ndarray, str]:
        """Feature frames ``[coefficients, frames]`` and stderr."""
        fmt = "s16" if samples.dtype == np.int16 else "f32"
        cmd = [str(self.exe), "-f", fmt, *args] + (["-t"] if trace else [])
        done = subprocess.run(cmd, input=samples.tobytes(), capture_output=True, check=True)
        coeffs = F.num_coefficients(self.config.features)
        if "-q" in args:
            return np.frombuffer(done.stdout, np.int8).reshape(-1, coeffs).T, done.stderr.decode()
        return np.frombuffer(done.stdout, np.float32).reshape(-1, coeffs).T, done.stderr.decode()


def build(directory: Path, config: Config, norm: artifacts.Normalization, cmsis: bool = False,
          main: str | None = None) -> Build:
    """Copy the sources, generate the header beside them and compile the host program."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("frontend.c", "frontend.h", "host_frontend_main.c"):
        shutil.copy(SOURCES / name, directory / name)
    write_frontend_header(config, norm, directory / "frontend_tables.h")
    sources = [directory / "frontend.c"]
    if main is None:
        sources.append(directory / "host_frontend_main.c")
    else:
        (directory / "main.c").write_text(main)
        sources.append(directory / "main.c")
    cmd = [compiler(), *CFLAGS, f"-I{directory}", *map(str, sources), "-o", str(directory / "host_frontend")]
    if cmsis:
        (directory / "arm_math.h").write_text(ARM_MATH_SHIM)
        cmd[1:1] = ["-DFRONTEND_USE_CMSIS_DSP"]
        cmd += cmsis_link_flags()
    cmd += ["-lm"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stderr}"
    return Build(directory / "host_frontend", config, norm)


def cmsis_link_flags() -> list[str]:
    """Link against the CMSIS-DSP objects inside the cmsisdsp wheel (a Python extension)."""
    spec = importlib.util.find_spec("cmsisdsp_transform")
    assert spec and spec.origin, "cmsisdsp (requirements.txt) is not installed"
    libdir = sysconfig.get_config_var("LIBDIR")
    assert sysconfig.get_config_var("Py_ENABLE_SHARED"), "the CMSIS build test needs a shared libpython"
    version = sysconfig.get_config_var("LDVERSION")
    return [spec.origin, f"-L{libdir}", f"-lpython{version}", f"-Wl,-rpath,{libdir}"]


def tf_features(x: np.ndarray, config: Config) -> np.ndarray:
    return F.compute_features(x, config.features, config.audio.sample_rate).numpy()


def raw_error(c: np.ndarray, tf_raw: np.ndarray) -> float:
    """max |c - tf| / max(1, |tf|): must stay <= TOL."""
    assert c.shape == tf_raw.shape
    return float(np.max(np.abs(c.astype(np.float64) - tf_raw) / np.maximum(1.0, np.abs(tf_raw))))


def normalized_error(c: np.ndarray, tf_raw: np.ndarray, norm: artifacts.Normalization) -> float:
    """The raw criterion for normalised outputs: the difference times std, in raw units."""
    expected = (tf_raw.astype(np.float64) - norm.mean[:, None]) / norm.std[:, None]
    diff = np.abs(c.astype(np.float64) - expected) * norm.std[:, None]
    return float(np.max(diff / np.maximum(1.0, np.abs(tf_raw))))


def frames_after(samples: int, config: Config) -> int:
    f = config.features
    return 0 if samples < f.frame_length else 1 + (samples - f.frame_length) // f.hop_length


CONFIGS = {
    "default": dict(kind=Config().features.kind, frame_length=Config().features.frame_length,
                    fft_length=Config().features.fft_length, hop_length=Config().features.hop_length,
                    num_mel_bins=Config().features.num_mel_bins),
    "mfcc": dict(kind="mfcc"),
    "logmel": dict(kind="logmel"),
    "mfcc_fft256_hop160": dict(kind="mfcc", frame_length=256, fft_length=256, hop_length=160,
                               num_mel_bins=24, num_mfcc=10, fmin=60.0, fmax=7600.0),
    "logmel_fft128_hop200": dict(kind="logmel", frame_length=128, fft_length=128, hop_length=200,
                                 num_mel_bins=16, fmin=0.0),
    # finer front ends: twice the frames (hop 256) and twice the mels
    "logmel_128mel_hop256": dict(kind="logmel", frame_length=1024, fft_length=1024, hop_length=256,
                                 num_mel_bins=128, fmin=20.0, fmax=8000.0),
}


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Build]:
    compiler()
    root = tmp_path_factory.mktemp("frontend_c")
    out = {}
    for name, options in CONFIGS.items():
        config = make_config(**options)
        out[name] = build(root / name, config, norm_for(config))
    return out


# --------------------------------------------------------------------------- tables

def test_sparse_mel_is_the_dense_matrix():
    config = make_config()
    mel = F.frontend_tables(config, artifacts.Normalization.identity(13))["mel"]
    pos, lengths, coefs = sparse_mel(mel)
    assert pos.shape == lengths.shape == (config.features.num_mel_bins,)
    assert coefs.size == lengths.sum() and coefs.dtype == np.float32
    assert pos.min() >= 1  # tf.signal puts no weight on the DC bin
    np.testing.assert_array_equal(dense_mel(pos, lengths, coefs, mel.shape[0]), mel)
    empty = np.zeros((5, 2), np.float32)
    empty[2:4, 1] = [0.5, 1.0]
    p, n, c = sparse_mel(empty)
    assert p.tolist() == [0, 2] and n.tolist() == [0, 2] and c.tolist() == [0.5, 1.0]


def test_header_is_deterministic_and_fingerprinted(tmp_path):
    config = make_config()
    norm = norm_for(config)
    text = frontend_header(config, norm)
    assert text.startswith("// ") and "Generated by `esc-tf train / esc-tf deploy` -- do not edit." in text
    assert frontend_header(config, norm) == text
    write_frontend_header(config, norm, tmp_path / "a.h")
    write_frontend_header(config, norm, tmp_path / "b.h")
    assert (tmp_path / "a.h").read_text() == (tmp_path / "b.h").read_text() == text
    fingerprint = frontend_fingerprint(config, norm)
    assert f'#define FRONTEND_FINGERPRINT        "{fingerprint}"' in text and len(fingerprint) == 16
    assert "#define FRONTEND_FEATURES_KIND_MFCC 1" in text and "frontend_dct[520]" in text
    changed = {
        "hop": make_config(hop_length=128),
        "fmin": make_config(fmin=30.0),
        "log_offset": make_config(log_offset=1e-5),
        "kind": make_config(kind="logmel"),
    }
    seen = {fingerprint}
    for name, other in changed.items():
        other_norm = norm if name != "kind" else artifacts.Normalization.identity(40)
        seen.add(frontend_fingerprint(other, other_norm))
    shifted = artifacts.Normalization(norm.mean + 1.0, norm.std)
    seen.add(frontend_fingerprint(config, shifted))
    assert len(seen) == len(changed) + 2
    logmel = frontend_header(make_config(kind="logmel"), artifacts.Normalization.identity(40))
    assert "#define FRONTEND_FEATURES_KIND_MFCC 0" in logmel and "frontend_dct" not in logmel


def test_header_rejects_wrong_normalization_size():
    with pytest.raises(ValueError, match="13 means"):
        frontend_header(make_config(), artifacts.Normalization.identity(40))


def test_host_program_reports_the_fingerprint(builds):
    b = builds["mfcc"]
    info = subprocess.run([str(b.exe), "-i"], capture_output=True, check=True, text=True).stdout
    assert f"fingerprint {frontend_fingerprint(b.config, b.norm)}" in info


# --------------------------------------------------------------------------- parity

@pytest.mark.parametrize("name", list(CONFIGS))
def test_matches_tf_signal(builds, name):
    """Normalised float-input output of every config against compute_features + Normalization."""
    b = builds[name]
    worst = 0.0
    for i, (amplitude, noise) in enumerate(SIGNALS):
        x = signal(3.0, amplitude, noise, seed=i)
        tf_raw = tf_features(x, b.config)
        c, _ = b.run(x)
        worst = max(worst, normalized_error(c, tf_raw, b.norm))
        raw, _ = b.run(x, "-r")
        worst = max(worst, raw_error(raw, tf_raw))
    print(f"{name}: max normalised-criterion error vs tf.signal {worst:.2e}")
    assert worst <= TOL_BY_CONFIG.get(name, TOL)


def test_int16_input_matches_the_python_scaling(builds):
    """PCM goes in as int16 and is scaled by 1/32768, exactly as the data pipeline does."""
    b = builds["mfcc"]
    worst = 0.0
    for i, (amplitude, noise) in enumerate(SIGNALS[:4]):
        pcm = np.round(signal(2.0, amplitude, noise, seed=10 + i) * 32767).astype(np.int16)
        wave = pcm.astype(np.float32) / 32768.0
        c, _ = b.run(pcm)
        worst = max(worst, normalized_error(c, tf_features(wave, b.config), b.norm))
        as_float, _ = b.run(wave)
        np.testing.assert_array_equal(c, as_float)
    print(f"int16 input: max normalised-criterion error vs tf.signal {worst:.2e}")
    assert worst <= TOL


def cmsis_mfcc(x: np.ndarray, config: Config) -> np.ndarray:
    """Raw MFCC ``[coefficients, frames]`` from cmsisdsp.arm_mfcc_f32 with our exported tables."""
    import cmsisdsp as dsp

    f = config.features
    tables = F.frontend_tables(config, artifacts.Normalization.identity(f.num_mfcc))
    pos, lengths, coefs = sparse_mel(tables["mel"])
    mfcc = dsp.arm_mfcc_instance_f32()
    status = dsp.arm_mfcc_init_f32(mfcc, f.fft_length, f.num_mel_bins, f.num_mfcc, tables["dct"].ravel(),
                                   pos, lengths, coefs, tables["window"])
    assert status == 0
    tmp = np.zeros(2 * f.fft_length + 2, np.float32)  # the CFFT variant needs 2N; RFFT N + 2
    count = frames_after(len(x), config)
    frames = [x[i * f.hop_length: i * f.hop_length + f.frame_length].copy() for i in range(count)]
    return np.stack([dsp.arm_mfcc_f32(mfcc, frame, tmp) for frame in frames], axis=1)


def test_matches_cmsis_arm_mfcc_f32_with_the_same_tables(builds):
    """arm_mfcc_f32 hard-codes log(x + 1e-6): it matches only while log_offset is 1e-6."""
    b = builds["mfcc"]
    assert b.config.features.log_offset == 1e-6
    worst_c, worst_tf = 0.0, 0.0
    for i, (amplitude, noise) in enumerate(SIGNALS):
        x = signal(2.0, amplitude, noise, seed=20 + i)
        cmsis = cmsis_mfcc(x, b.config)
        raw, _ = b.run(x, "-r")
        worst_c = max(worst_c, raw_error(raw, cmsis))
        worst_tf = max(worst_tf, raw_error(cmsis, tf_features(x, b.config)))
    print(f"C vs arm_mfcc_f32 {worst_c:.2e}; arm_mfcc_f32 vs tf.signal {worst_tf:.2e}")
    assert worst_c <= TOL and worst_tf <= TOL


def test_cmsis_build_uses_arm_rfft_fast_f32(builds, tmp_path):
    """-DFRONTEND_USE_CMSIS_DSP, linked to the real CMSIS-DSP code in the cmsisdsp wheel."""
    portable = builds["mfcc"]
    cmsis = build(tmp_path / "cmsis", portable.config, portable.norm, cmsis=True)
    worst_tf, worst_portable = 0.0, 0.0
    for i, (amplitude, noise) in enumerate(SIGNALS):
        x = signal(2.0, amplitude, noise, seed=30 + i)
        ours, _ = cmsis.run(x)
        worst_tf = max(worst_tf, normalized_error(ours, tf_features(x, portable.config), portable.norm))
        worst_portable = max(worst_portable, raw_error(cmsis.run(x, "-r")[0], portable.run(x, "-r")[0]))
    print(f"CMSIS build vs tf.signal {worst_tf:.2e}; vs portable build {worst_portable:.2e}")
    assert worst_tf <= TOL_CMSIS and worst_portable <= TOL


# --------------------------------------------------------------------------- streaming

def parse_trace(trace: str) -> list[tuple[int, int]]:
    return [tuple(map(int, line.split())) for line in trace.splitlines()]


@pytest.mark.parametrize("name", ["mfcc", "mfcc_fft256_hop160", "logmel_fft128_hop200"])
def test_streaming_frames(builds, name):
    b = builds[name]
    f = b.config.features
    x = signal(0.5, 0.3, 0.1, seed=40)
    batch, _ = b.run(x, "-b")
    assert batch.shape[1] == frames_after(len(x), b.config)
    for chunk in (f.hop_length, 1, 37, f.hop_length - 1):
        stream, trace = b.run(x, "-c", str(chunk), trace=True)
        np.testing.assert_array_equal(stream, batch)  # same frames, bit for bit
        previous = 0
        for done, got in parse_trace(trace):
            assert got == frames_after(done, b.config) - frames_after(previous, b.config)
            assert got == 0 or done >= f.frame_length  # nothing before the first full frame
            previous = done
    for n in (0, f.frame_length - 1, f.frame_length, f.frame_length + f.hop_length - 1,
              f.frame_length + f.hop_length, 3 * f.hop_length + 7):
        out, _ = b.run(x[:n])
        assert out.shape[1] == frames_after(n, b.config)
        if n >= f.frame_length:
            assert out.shape[1] == tf_features(x[:n], b.config).shape[1]


def test_first_frame_is_samples_zero_to_frame_length(builds):
    """Changing a sample after the first frame leaves frame 0 alone; changing sample 0 does not."""
    b = builds["mfcc"]
    f = b.config.features
    x = signal(0.2, 0.3, 0.1, seed=41)
    base, _ = b.run(x, "-r")
    later = x.copy()
    later[f.frame_length] += 0.5
    first = x.copy()
    first[1] += 0.5
    np.testing.assert_array_equal(b.run(later, "-r")[0][:, 0], base[:, 0])
    assert np.any(b.run(first, "-r")[0][:, 0] != base[:, 0])


# --------------------------------------------------------------------------- int8

def test_quantize_matches_tflite_rounding(tmp_path):
    config = make_config()
    b = build(tmp_path / "q", config, artifacts.Normalization.identity(13), main=QUANTIZE_MAIN)
    rng = np.random.default_rng(5)
    halves = np.arange(-300, 300, dtype=np.float32) + 0.5
    for scale, zp in [(0.5, 0), (0.0625, -7), (0.037, 12), (1.3, -128)]:
        x = np.concatenate([halves * np.float32(scale), rng.normal(0, 200 * scale, 1000),
                            [0.0, -0.0, 1e30, -1e30, 127 * scale, -128 * scale]]).astype(np.float32)
        done = subprocess.run([str(b.exe), repr(scale), str(zp)], input=x.tobytes(), capture_output=True,
                              check=True)
        # predictors.quantize is TFLite's QUANTIZE op, value for value (tests/runtime/test_predictors.py)
        np.testing.assert_array_equal(np.frombuffer(done.stdout, np.int8), predictors.quantize(x, scale, zp))


def test_host_quantized_output_matches_float_output(builds):
    b = builds["mfcc"]
    x = signal(0.5, 0.3, 0.1, seed=50)
    floats, _ = b.run(x)
    q, _ = b.run(x, "-q", "0.05", "-3")
    np.testing.assert_array_equal(q, predictors.quantize(floats, 0.05, -3))
