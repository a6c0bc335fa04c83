"""The esc-tf command: installed as a console script, one parser, calm start-up, one-line errors."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from esc_tf.cli.main import COMMANDS, build_parser, main
from esc_tf.native_logs import HARMLESS, native_notices_filtered

SUBCOMMANDS = {"download", "check", "train", "deploy", "evaluate", "predict", "explore", "tune", "baselines", "teacher",
               "report", "frontend"}


def test_the_console_script_is_installed_and_lists_every_subcommand():
    script = shutil.which("esc-tf")
    assert script, "esc-tf is not on PATH: install the package with pip install -e ."
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for name in SUBCOMMANDS:
        assert f"\n    {name}" in result.stdout
    assert result.stderr == ""  # no native start-up chatter


def test_python_m_esc_tf_train_is_esc_tf_train():
    result = subprocess.run([sys.executable, "-m", "esc_tf.train", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: esc-tf train")
    assert "Every config option" in result.stdout and "train.epochs" in result.stdout


def test_every_subcommand_module_registers_a_handler():
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command")
    assert set(commands.choices) == SUBCOMMANDS
    assert len(COMMANDS) == len({c.__name__ for c in COMMANDS})
    for name, sub in commands.choices.items():
        if name == "report":
            continue  # its handlers sit on its two actions
        assert callable(sub.get_default("handler")), name


def test_a_user_error_is_one_line_without_a_traceback(tmp_path, capsys):
    assert main(["check", "--data-dir", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert "nowhere" in err


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(ValueError):
        main(["--debug", "check", "--data-dir", str(tmp_path / "nowhere")])


def test_ctrl_c_says_how_to_resume(monkeypatch, capsys):
    from esc_tf.cli import dataset

    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(dataset, "run_check", interrupted)
    assert main(["check"]) == 130
    assert "run the same command again to resume" in capsys.readouterr().err


def test_only_known_harmless_native_lines_are_filtered():
    assert HARMLESS.search("E external/local_xla/xla/stream_executor/cuda/cuda_fft.cc:485] Unable to register "
                           "cuFFT factory: Attempting to register factory for plugin cuFFT")
    assert not HARMLESS.search("E tensorflow/core/framework/op_kernel.cc:1816] OP_REQUIRES failed: "
                               "out of memory")


def test_the_final_summary_lists_every_fold_and_the_means():
    from esc_tf.cli.train import summary_table
    summary = {"folds": [{"name": "fold1", "accuracy": 0.5}, {"name": "fold2", "accuracy": 0.75}],
               "mean_accuracy": 0.625,
               "edge": {"folds": ["fold1", "fold2"], "variants": {"int8_tflm": {"per_fold": [0.25, 1.0],
                                                                                "mean": 0.625}}},
               "deploy": {"int8_tflite_bytes": 1234, "arena_size_bytes": 5678}}
    lines = summary_table(summary).splitlines()
    assert lines[1].split() == ["fold1", "0.5000", "0.2500"]
    assert lines[2].split() == ["fold2", "0.7500", "1.0000"]
    assert lines[3].split() == ["mean", "0.6250", "0.6250"]
    assert "1234 B int8, 5678 B TFLM arena" in lines[4]
    assert summary_table({**summary, "edge": {}, "deploy": None}).splitlines()[1].split() == ["fold1", "0.5000", "-"]


def test_native_notices_are_filtered_and_other_lines_kept(capfd):
    import os
    with native_notices_filtered():
        os.write(2, b"W0000 00:00:1 tf_tfl_flatbuffer_helpers.cc:392] Ignored output_format.\n")
        os.write(1, b"fully_quantize: 0, inference_type: 6, input_inference_type: INT8\n")
        os.write(2, b"E op_kernel.cc:1] a real error\n")
        os.write(1, b"a line of the program\n")
    out, err = capfd.readouterr()
    assert out == "a line of the program\n" and err == "E op_kernel.cc:1] a real error\n"


@pytest.mark.parametrize("content, problem", [('{"mean": [1.0]}', "no 'std' entry"),
                                              ('{"mean": [1e40], "std": [1.0]}', "finite float32"),
                                              ('{"mean": [0.0], "std": [0.0]}', "std above 0"),
                                              ("[1, 2]", "not a normalisation file")])
def test_a_bad_normalization_file_is_one_line_naming_it(tmp_path, capsys, content, problem):
    path = tmp_path / "normalization.json"
    path.write_text(content)
    assert main(["frontend", "--normalization", str(path), str(tmp_path / "frontend_tables.h")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: --normalization {path}: ") and problem in err and err.count("\n") == 1
    assert not (tmp_path / "frontend_tables.h").exists()
