"""The firmware's C parts (firmware_stub/) against the Python pipeline and TFLM.

One tiny model is trained and exported (module fixture); the C parts are compiled in
strict C99 against its generated headers and fed int16 clips. Parity criterion, stated
once: the C int8 input tensor equals ``evaluate.quantize(pipeline.feature_array(...))``
element for element, except that at most ``MAX_MISMATCH_FRACTION`` of the elements may
be one int8 step away (never more). The C front end is float32 like tf.signal but not
bit-identical (about 6e-6 relative, firmware_stub/frontend/README.md), so a feature that
falls within that distance of a rounding boundary of the input scale may round the other
way; nothing else may differ.
"""
from __future__ import annotations

import dataclasses
import json
import re
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from esc_tf import artifacts
from esc_tf.artifacts import ModelMeta, Normalization
from esc_tf.audio.features import feature_shape, window_span
from esc_tf.codegen.frontend_tables import frontend_header
from esc_tf.data import dataset as data_mod
from esc_tf.runtime import predictors as evaluate
from firmware_stub.tools import arduino_sketch, check_generated, footprint, host_build, make_golden, reference
from tests.conftest import CLASS_FREQS, load_benchmark

REPO = Path(__file__).resolve().parents[1]
FIRMWARE = REPO / "firmware_stub"
MAX_MISMATCH_FRACTION = 0.005
TFLM_STUB = FIRMWARE / "host_tests" / "tflm_api_stub"


@dataclasses.dataclass
class Export:
    deploy: Path  # the export folder, with golden_clip.h/.c
    model: bytes
    meta: ModelMeta
    programs: dict[str, Path]

    @property
    def clip_samples(self) -> int:
        return self.meta.config.audio.clip_samples


@pytest.fixture(scope="module")
def exported(tmp_path_factory, dataset_dir, exported_run) -> Export:
    """The test run's tiny exported model (``edge.deploy``: training, pruning, int8 conversion,
    the deployment files), copied, with golden files made for it, and the host programs."""
    if host_build.compiler() is None:
        pytest.skip("no C compiler found")
    tmp = tmp_path_factory.mktemp("firmware")
    deploy = tmp / artifacts.DEPLOY_DIR
    shutil.copytree(exported_run / artifacts.DEPLOY_DIR, deploy)
    model_path = deploy / "model_int8.tflite"
    meta_df = data_mod.read_metadata(dataset_dir)
    clip = make_golden.load_clip(dataset_dir / "audio" / meta_df["filename"].iloc[0], 16000)
    _, files = make_golden.make_golden(model_path, clip[:8000], "first synthetic clip, 0.5 s")
    for name, text in files.items():
        (deploy / name).write_text(text)
    programs = host_build.build(deploy, tmp / "build", tuple(host_build.PROGRAMS))
    return Export(deploy, model_path.read_bytes(), ModelMeta.for_model(model_path), programs)


def tone_clips(rate: int, samples: int) -> np.ndarray:
    """int16 clips: each class's tone at several levels, plus silence, noise and full scale."""
    rng = np.random.default_rng(7)
    t = np.arange(samples) / rate
    clips = []
    for freq in CLASS_FREQS.values():
        for level in (0.5, 0.1, 0.01, 1e-3):
            tone = level * np.sin(2 * np.pi * freq * rng.uniform(0.97, 1.03) * t + rng.uniform(0, 6.3))
            clips.append(tone + 0.05 * level * rng.standard_normal(samples))
    clips.append(np.zeros(samples))
    clips.append(0.3 * rng.standard_normal(samples))
    clips.append(np.sign(np.sin(2 * np.pi * 700 * t)) * 1.5)  # clipped square wave
    return reference.to_int16(np.stack(clips))


@pytest.fixture(scope="module")
def clips(exported) -> np.ndarray:
    """int16 clips of one window each: synthetic tones plus every dataset clip, rounded to int16."""
    config = exported.meta.config
    waves = data_mod.load_waveforms(data_mod.load_dataset(config), config.audio, config.data.cache_dir,
                                    progress=False)
    return np.concatenate([tone_clips(config.audio.sample_rate, exported.clip_samples), reference.to_int16(waves)])


@pytest.fixture(scope="module")
def c_inputs(exported, clips) -> np.ndarray:
    return host_build.run_host_pipeline(exported.programs["host_pipeline"], clips)


@pytest.fixture(scope="module")
def python_inputs(exported, clips) -> np.ndarray:
    return reference.python_inputs(reference.from_int16(clips), exported.meta, exported.model)


def assert_parity(c: np.ndarray, py: np.ndarray) -> None:
    assert c.shape == py.shape
    diff = np.abs(c.astype(int) - py.astype(int))
    assert diff.max() <= 1, f"an element is {diff.max()} int8 steps away"
    assert np.mean(diff > 0) <= MAX_MISMATCH_FRACTION, f"{np.mean(diff > 0):.4%} of the elements differ"


# --------------------------------------------------------------------------- parity

def test_input_tensor_matches_python(c_inputs, python_inputs, clips):
    assert len(clips) == 15 + 30
    assert_parity(c_inputs, python_inputs)


def test_c_path_predicts_the_same_class_as_python(exported, c_inputs, python_inputs):
    c_scores = reference.tflm_scores(exported.model, c_inputs)
    py_scores = reference.tflm_scores(exported.model, python_inputs)
    assert np.array_equal(c_scores.argmax(axis=1), py_scores.argmax(axis=1))
    same = np.all(c_inputs == python_inputs, axis=1)
    assert np.array_equal(c_scores[same], py_scores[same])  # identical input, identical TFLM output


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    """A 16-bit mono WAV with odd-sized chunks before and after the data chunk."""
    def chunk(tag: bytes, body: bytes) -> bytes:
        return tag + struct.pack("<I", len(body)) + body + b"\0" * (len(body) & 1)
    fmt = struct.pack("<HHIIHH", 1, 1, rate, 2 * rate, 2, 16)
    body = b"WAVE" + chunk(b"fmt ", fmt) + chunk(b"LIST", b"INFOabc") + \
        chunk(b"data", samples.astype("<i2").tobytes()) + chunk(b"LIST", b"trailing bytes")
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_wav_input_equals_raw_input(exported, clips, tmp_path):
    wav = tmp_path / "clip.wav"
    wav.write_bytes(wav_bytes(clips[3], 16000))
    assert np.array_equal(sf.read(wav, dtype="int16")[0], clips[3])
    out = tmp_path / "out.bin"
    subprocess.run([str(exported.programs["host_pipeline"]), str(wav), str(out)], check=True)
    raw = host_build.run_host_pipeline(exported.programs["host_pipeline"], clips[3:4])
    assert np.array_equal(np.frombuffer(out.read_bytes(), np.int8), raw[0])


def test_wav_with_another_rate_is_refused(exported, clips, tmp_path):
    wav = tmp_path / "clip.wav"
    wav.write_bytes(wav_bytes(clips[3], 22050))
    done = subprocess.run([str(exported.programs["host_pipeline"]), str(wav), str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert done.returncode == 1 and "16000" in done.stderr


def level_changing_stream(exported: Export, clips: np.ndarray) -> np.ndarray:
    """A clip, then a tone at 1 % of full scale starting a window, then half a full-scale square wave."""
    hop = exported.meta.config.features.hop_length
    first = clips[0][: len(clips[0]) // hop * hop]
    return np.concatenate([first, clips[2], clips[-3][: exported.clip_samples // 2]])


@pytest.fixture(scope="module")
def stream_reference(exported, clips) -> np.ndarray:
    """Python's int8 window for every frame of level_changing_stream, each at its own level."""
    c = exported.meta.config
    stream = level_changing_stream(exported, clips)
    coeffs, frames = feature_shape(c)
    count = (len(stream) - window_span(c.features, exported.clip_samples)) // c.features.hop_length + 1
    heard, views = reference.stream_windows(stream, exported.meta, exported.model, stride=1)
    assert np.array_equal(heard, np.arange(count) + frames)
    unmoved = c.model.mel_shifts * c.model.time_rolls  # the view at mel shift 0, rotation 0
    return views.reshape(len(heard), -1, coeffs * frames)[:, unmoved]


def test_sliding_window_follows_the_stream(exported, clips, stream_reference):
    """A long stream whose level changes: every window written equals the Python features of that window's
    samples, each window at its own level (features.peak_normalize) as a clip is in training."""
    c = exported.meta.config
    assert c.features.peak_normalize
    hop = c.features.hop_length
    stream = level_changing_stream(exported, clips)
    windows = host_build.run_host_pipeline(exported.programs["host_pipeline"], stream[None], stride=1)
    assert_parity(windows, stream_reference)
    first, quiet = len(clips[0]) // hop * hop, clips[2]
    # the window on the quiet clip alone is the window of that clip recorded 30 dB louder (x 32, exact in int16)
    loud = host_build.run_host_pipeline(exported.programs["host_pipeline"], (quiet.astype(np.int32) * 32)[None])
    assert_parity(windows[first // hop][None], loud)
    strided = host_build.run_host_pipeline(exported.programs["host_pipeline"], stream[None], stride=7)
    assert np.array_equal(strided, windows[::7])


@pytest.fixture(scope="module")
def compact_pipeline(exported, tmp_path_factory) -> Path:
    """host_pipeline built with -DFEATURE_STREAM_COMPACT_RING=1 (16-bit mels in the level ring)."""
    flags = (*host_build.CFLAGS, footprint.COMPACT_RING)
    out = tmp_path_factory.mktemp("compact")
    return host_build.build(exported.deploy, out, ("host_pipeline",), cflags=flags)["host_pipeline"]


def test_compact_level_ring_keeps_parity(exported, clips, python_inputs, stream_reference, compact_pipeline):
    """The compact ring meets the same criterion, on every clip and on every window of a stream whose
    level changes."""
    compact = compact_pipeline
    inputs = host_build.run_host_pipeline(compact, clips)
    assert_parity(inputs, python_inputs)
    float_ring = host_build.run_host_pipeline(exported.programs["host_pipeline"], clips)
    assert not np.array_equal(inputs, float_ring)  # the define took effect
    stream = level_changing_stream(exported, clips)
    assert_parity(host_build.run_host_pipeline(compact, stream[None], stride=1), stream_reference)


def test_short_clip_is_zero_padded_like_training(exported, clips, tmp_path):
    short = clips[1][: exported.clip_samples * 3 // 5]
    raw = tmp_path / "short.raw"
    raw.write_bytes(short.tobytes())
    out = tmp_path / "out.bin"
    subprocess.run([str(exported.programs["host_pipeline"]), "-r", str(raw), str(out)], check=True)
    padded = np.zeros(exported.clip_samples, np.int16)
    padded[: short.size] = short
    expected = reference.python_inputs(reference.from_int16(padded)[None], exported.meta, exported.model)
    assert_parity(np.frombuffer(out.read_bytes(), np.int8)[None], expected)


# --------------------------------------------------------------------------- C unit checks

@pytest.mark.parametrize("program", ["test_feature_buffer", "test_postprocess", "test_compact_ring"])
def test_c_unit_checks(exported, program):
    done = subprocess.run([str(exported.programs[program])], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert re.search(r"\d+ checks passed", done.stdout)


# --------------------------------------------------------------------------- self-test

def test_self_test_passes_on_the_host(exported, tmp_path):
    """The golden clip through audio_provider -> feature_stream, then TFLM on that window."""
    exe = exported.programs["host_self_test"]
    window = tmp_path / "input.bin"
    first = subprocess.run([str(exe), "-o", str(window)], capture_output=True, text=True)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "setup_ok 1" in first.stdout
    scores = reference.tflm_scores(exported.model, np.frombuffer(window.read_bytes(), np.int8)[None])[0]
    (tmp_path / "scores.bin").write_bytes(scores.tobytes())
    second = subprocess.run([str(exe), "-s", str(tmp_path / "scores.bin")], capture_output=True, text=True)
    assert second.returncode == 0 and "passed 1" in second.stdout, second.stdout
    golden = (exported.deploy / "golden_clip.c").read_text()
    assert f"g_golden_scores[{len(scores)}]" in golden


def test_self_test_fails_with_wrong_scores_or_front_end(exported, tmp_path):
    exe = exported.programs["host_self_test"]
    window = tmp_path / "input.bin"
    subprocess.run([str(exe), "-o", str(window)], check=True, capture_output=True)
    scores = reference.tflm_scores(exported.model, np.frombuffer(window.read_bytes(), np.int8)[None])[0]
    wrong = np.roll(scores, 1)
    (tmp_path / "wrong.bin").write_bytes(wrong.tobytes())
    done = subprocess.run([str(exe), "-s", str(tmp_path / "wrong.bin")], capture_output=True, text=True)
    assert done.returncode == 1 and "passed 0" in done.stdout
    # Tables of another normalisation: another fingerprint, and other features.
    other = tmp_path / "other"
    shutil.copytree(exported.deploy, other)
    identity = Normalization.identity(feature_shape(exported.meta.config)[0])
    (other / "frontend_tables.h").write_text(frontend_header(exported.meta.config, identity))
    built = host_build.build(other, tmp_path / "build", ("host_self_test",))
    done = subprocess.run([str(built["host_self_test"])], capture_output=True, text=True)
    assert done.returncode == 1 and "setup_ok 0" in done.stdout
    # The front end and golden clip of one export, the model settings of another.
    mixed = tmp_path / "mixed"
    shutil.copytree(exported.deploy, mixed)
    settings = (mixed / "model_settings.h").read_text()
    (mixed / "model_settings.h").write_text(re.sub(r'kFrontendFingerprint "\w+"', 'kFrontendFingerprint "0"', settings))
    built = host_build.build(mixed, tmp_path / "build-mixed", ("host_self_test",))
    done = subprocess.run([str(built["host_self_test"])], capture_output=True, text=True)
    assert done.returncode == 1 and "setup_ok 0" in done.stdout


def test_golden_files_are_generated_and_regenerate_identically(exported):
    header = (exported.deploy / "golden_clip.h").read_text().splitlines()
    assert "do not edit" in header[1] and "make_golden" in header[1]
    clip, source = make_golden.read_existing(exported.deploy)
    assert clip.size == 8000 and source == "first synthetic clip, 0.5 s"
    golden, files = make_golden.make_golden(exported.deploy / "model_int8.tflite", clip, source)
    assert files["golden_clip.h"] == "\n".join(header) + "\n"
    assert files["golden_clip.c"] == (exported.deploy / "golden_clip.c").read_text()
    assert f"#define kGoldenExpectedClass       {golden.top_class}" in files["golden_clip.h"]


def test_make_golden_command(exported, tmp_path, capsys):
    out = tmp_path / "golden"
    assert make_golden.main(["--model", str(exported.deploy / "model_int8.tflite"), "--out-dir", str(out),
                             "--seconds", "0.25"]) == 0
    assert "expected class" in capsys.readouterr().out
    clip, source = make_golden.read_existing(out)
    assert clip.size == 4000 and source.startswith("synthetic")
    assert np.array_equal(clip, make_golden.synthetic_clip(16000, 0.25))
    assert make_golden.main(["--model", str(exported.deploy / "model_int8.tflite"), "--out-dir", str(out),
                             "--from-existing"]) == 0
    assert make_golden.read_existing(out)[0].size == 4000


@pytest.mark.parametrize("args, message", [
    (["--clip", "missing.wav"], "missing.wav"),
    (["--seconds", "0"], "--seconds 0 holds no sample at 16000 Hz"),
])
def test_make_golden_refuses_bad_input_in_one_line(exported, tmp_path, capsys, args, message):
    out = tmp_path / "golden"
    assert make_golden.main(["--model", str(exported.deploy / "model_int8.tflite"), "--out-dir", str(out),
                             *args]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not out.exists()


def test_check_generated_fails_on_a_folder_that_holds_no_export(exported, tmp_path, capsys):
    assert check_generated.main([str(tmp_path / "tflite-typo")]) == 1
    assert "no model_meta.json; pass an export folder" in capsys.readouterr().err
    copy = tmp_path / "export"
    shutil.copytree(exported.deploy, copy)
    (copy / "model_int8.tflite").unlink()
    assert check_generated.main([str(copy)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "model_int8.tflite" in err[0]


def test_arduino_sketch_into_a_file_is_one_line(exported, tmp_path, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    assert arduino_sketch.main([str(blocker), "--export", str(exported.deploy)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")


# --------------------------------------------------------------------------- staleness

def test_fresh_export_is_not_stale(exported):
    assert check_generated.stale(exported.deploy) == []


def test_stale_files_are_reported(exported, tmp_path):
    copy = tmp_path / "export"
    shutil.copytree(exported.deploy, copy)
    tables = (copy / "frontend_tables.h").read_text()
    (copy / "frontend_tables.h").write_text(re.sub(r"FRONTEND_LOG_OFFSET\s+\S+", "FRONTEND_LOG_OFFSET 1e-5f", tables))
    settings = (copy / "model_settings.h").read_text()
    (copy / "model_settings.h").write_text(re.sub(r"kTensorArenaSize \d+", "kTensorArenaSize 1024", settings))
    (copy / "golden_clip.c").write_text((copy / "golden_clip.c").read_text().replace(
        "g_golden_scores[3] = {\n    ", "g_golden_scores[3] = {\n    1"))
    (copy / "model_op_resolver.h").unlink()
    problems = "\n".join(check_generated.stale(copy))
    for name in ("frontend_tables.h", "kTensorArenaSize 1024", "golden_clip.c", "model_op_resolver.h: missing"):
        assert name in problems
    (copy / "golden_clip.c").unlink()
    assert "run `python -m firmware_stub.tools.make_golden" in "\n".join(check_generated.stale(copy))


def test_arena_measurement_is_deterministic(exported):
    defines = dict(re.findall(r"#define (k\w+) (\S+)", (exported.deploy / "model_settings.h").read_text()))
    assert int(defines["kTensorArenaMeasured"]) == evaluate.measure_arena(exported.model)


def test_committed_export_is_not_stale():
    export_dir = REPO / "tflite"
    if not (export_dir / artifacts.META_FILE).is_file():
        pytest.skip("tflite/ holds no export yet (no tflite/model_meta.json): nothing committed to check")
    problems = check_generated.stale(export_dir)
    assert not problems, "stale generated files in tflite/:\n" + "\n".join(problems)


# --------------------------------------------------------------------------- other compilers

def test_tflm_sources_compile_against_the_api_stub(exported, tmp_path):
    """main.cc, model_runner.cc and device_check_main.cc need TFLM, absent here: compile them (syntax
    and types) against declarations of the TFLM API they use, in TFLM's C++17, and model_data.cc as it is."""
    cxx = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        pytest.skip("no C++ compiler found")
    src = host_build.stage(exported.deploy, tmp_path / "src")
    flags = ["-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic", "-fno-exceptions", "-fno-rtti",
             "-I", str(src), "-I", str(TFLM_STUB)]
    for name in ("main.cc", "model_runner.cc", "device_check_main.cc"):
        done = subprocess.run([cxx, *flags, "-fsyntax-only", str(src / name)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    done = subprocess.run([cxx, "-std=c++17", "-Wall", "-Werror", "-c", str(src / "model_data.cc"), "-o",
                           str(tmp_path / "model_data.o")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_c_parts_build_for_cortex_m4_and_footprint_adds_up(exported):
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed")
    m = footprint.measure(exported.deploy)  # compiles every C part with -Werror for the Cortex-M4
    coeffs, frames = feature_shape(exported.meta.config)
    states = m["states"]
    assert states["feature_buffer_t"] == -(-coeffs * frames // 4) * 4 + 8
    features = exported.meta.config.features
    assert features.peak_normalize  # the stream keeps each frame's mels and peak, a ring slot and two counts
    level_ring = 4 * frames * (features.num_mel_bins + 1) + 12
    assert states["feature_stream_t"] == states["frontend_state_t"] + states["feature_buffer_t"] + 4 + level_ring
    compact_ring = frames * (2 * features.num_mel_bins + 4 + 4) + 12  # 16-bit mels, each frame's largest
    assert m["compact_feature_stream_t"] == states["feature_stream_t"] - level_ring + compact_ring
    assert m["objects"]["golden_clip.c"][0] >= 2 * 8000 + coeffs * frames  # clip + input in flash
    assert m["linked"][0] > m["objects"]["frontend.c"][0]
    assert "tensor arena" in footprint.format_table(m)


def test_cmake_build_runs_the_unit_checks_and_links_the_tflm_target(exported, tmp_path):
    """CMake: host programs + ctest, and the esc_firmware target linked against the API stub."""
    if shutil.which("cmake") is None:
        pytest.skip("cmake not installed")
    build = tmp_path / "build"
    subprocess.run(["cmake", "-S", str(FIRMWARE), "-B", str(build), f"-DGENERATED_DIR={exported.deploy}",
                    f"-DTFLM_ROOT={TFLM_STUB}"], check=True, capture_output=True)
    done = subprocess.run(["cmake", "--build", str(build), "-j2"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (build / "esc_firmware").is_file() and (build / "esc_device_check").is_file()
    done = subprocess.run(["ctest", "--test-dir", str(build)], capture_output=True, text=True)
    assert done.returncode == 0 and "100% tests passed" in done.stdout, done.stdout
    assert "test_compact_ring" in done.stdout
    # The stub's AllocateTensors() fails: the device check says so and stops, on clips and on a recording.
    clips, recording = tmp_path / "clips.bin", tmp_path / "recording.raw"
    clips.write_bytes(bytes(4 * exported.clip_samples))
    recording.write_bytes(bytes(2 * exported.clip_samples))
    for args in ([str(clips), str(tmp_path / "scores.bin")], ["-s", str(recording), str(tmp_path / "decisions.txt")]):
        done = subprocess.run([str(build / "esc_device_check"), *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 1 and "firmware set-up failed" in done.stdout, done.stdout


def test_cmake_option_builds_the_compact_ring(exported, clips, compact_pipeline, tmp_path):
    """-DFEATURE_STREAM_COMPACT_RING=ON gives the window the compact ring gives, not the float ring's."""
    if shutil.which("cmake") is None:
        pytest.skip("cmake not installed")
    build = tmp_path / "build"
    subprocess.run(["cmake", "-S", str(FIRMWARE), "-B", str(build), f"-DGENERATED_DIR={exported.deploy}",
                    "-DFEATURE_STREAM_COMPACT_RING=ON"], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(build), "--target", "host_pipeline"], check=True, capture_output=True)
    some = clips[:8]
    from_cmake = host_build.run_host_pipeline(build / "host_pipeline", some)
    assert np.array_equal(from_cmake, host_build.run_host_pipeline(compact_pipeline, some))
    assert not np.array_equal(from_cmake, host_build.run_host_pipeline(exported.programs["host_pipeline"], some))


def test_cmake_refuses_a_folder_without_an_export(tmp_path):
    if shutil.which("cmake") is None:
        pytest.skip("cmake not installed")
    done = subprocess.run(["cmake", "-S", str(FIRMWARE), "-B", str(tmp_path / "b"), f"-DGENERATED_DIR={tmp_path}"],
                          capture_output=True, text=True)
    assert done.returncode != 0 and "model_settings.h" in done.stderr and "make_golden" in done.stderr


def test_arduino_sketch_is_flat_and_compiles_with_arduino_defined(exported, tmp_path):
    sketch = arduino_sketch.write_sketch(exported.deploy, tmp_path, "esc")
    names = {p.name for p in sketch.iterdir()}
    assert {"esc.ino", "main.cpp", "model_runner.cpp", "model_data.cpp", "frontend.c", "frontend_tables.h",
            "golden_clip.c", "model_settings.h", "model_op_resolver.h"} <= names
    assert not [n for n in names if n.endswith(".cc") or n.startswith(("host_", "test_"))]
    assert (sketch / "frontend_tables.h").read_text() == (exported.deploy / "frontend_tables.h").read_text()
    cxx = shutil.which("c++") or shutil.which("g++")
    if cxx is None:
        pytest.skip("no C++ compiler found: the sketch was written and checked but not compiled")
    for name in ("main.cpp", "model_runner.cpp"):
        done = subprocess.run([cxx, "-std=c++11", "-DARDUINO=10819", "-Wall", "-Wextra", "-Werror", "-pedantic",
                               "-I", str(sketch), "-I", str(TFLM_STUB), "-fsyntax-only", str(sketch / name)],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


# --------------------------------------------------------------------------- benchmark

def test_device_parity_benchmark(exported, dataset_dir, tmp_path, capsys):
    bench = load_benchmark("device_parity")
    model = str(exported.deploy / "model_int8.tflite")
    report, out_json = tmp_path / "parity.md", tmp_path / "parity.json"
    args = ["--model", model, "--data-dir", str(dataset_dir), "--folds", "1", "--report", str(report)]
    assert bench.main(args) == 1  # 6 clips: fewer than the default minimum of 100
    assert bench.main([*args, "--min-clips", "6", "--json", str(out_json)]) == 0
    assert bench.main([*args, "--min-clips", "6", "--folds", "2"]) == 0
    result = json.loads(out_json.read_text())
    assert result["clips"] == 6 and result["top1_agreement"] >= 5 / 6 and result["max_abs_input_diff"] <= 1
    # 22.05 kHz stereo, yet int16-exact after decoding: the decoder rounds to 16-bit PCM like a microphone
    assert result["clips_seen_in_training"] == 6 and result["clips_not_int16_exact"] == 0
    assert "decoded_float_top1_agreement" not in result  # no rounding left to compare against
    text = report.read_text()
    assert text.startswith("# Device parity") and text.count("\n## ") == 2  # one section per folds
    assert "| top-1 agreement (device path vs Python path) |" in text
    assert "top-1 agreement" in capsys.readouterr().out
    assert bench.main([*args, "--min-clips", "6"]) == 0  # same model, data and folds: replaced
    assert report.read_text().count("\n## ") == 2
