"""esc-tf predict on a tiny exported model: formats, rates, lengths, errors, directories."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import soundfile as sf

from esc_tf import pipeline
from esc_tf.cli.main import main as cli_main
from esc_tf.data import dataset as data
from esc_tf.runtime import predictors as evaluate
from esc_tf.runtime.predictors import load_predictor
from esc_tf.stages import predict
from tests.conftest import CLASS_FREQS, CLASSES

NAMES = dict(CLASSES)  # target -> class name

HEADER = re.compile(r"^(\S+)  \((\d+\.\d\d) s, (\d+) windows?\)$")
RANK = re.compile(r"^  (\d)\. (\w+)\s+(\d\.\d{4})$")


def _tone(target: int, seconds: float, rate: int, stereo: bool = False) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * CLASS_FREQS[target] * t)
    return np.stack([x, 0.5 * x], axis=1) if stereo else x


def _parse(stdout: str) -> dict[str, dict]:
    """File -> {"seconds", "windows", "top": [(label, score), ...]} from the printed results."""
    results: dict[str, dict] = {}
    current = None
    for line in stdout.splitlines():
        if m := HEADER.match(line):
            current = results[m.group(1)] = {"seconds": float(m.group(2)), "windows": int(m.group(3)), "top": []}
        elif m := RANK.match(line):
            assert current is not None and int(m.group(1)) == len(current["top"]) + 1
            current["top"].append((m.group(2), float(m.group(3))))
        elif line.strip():
            raise AssertionError(f"unexpected output line {line!r}")
    return results


def test_split_windows():
    window, hop = 10, 5
    short = predict.split_windows(np.ones(4), window, hop)
    assert short.shape == (1, 10) and short[0, 4:].sum() == 0
    assert predict.split_windows(np.arange(10.0), window, hop).shape == (1, 10)
    long = predict.split_windows(np.arange(23.0), window, hop)
    assert [int(w[0]) for w in long] == [0, 5, 10, 13]  # last window ends at the end
    assert np.allclose(evaluate.softmax(np.array([[0.0, np.log(3.0)]])), [[0.25, 0.75]])


def test_formats_rates_and_lengths(exported_run, tmp_path, capsys):
    files = {"stereo44k.wav": (_tone(41, 1.0, 44100, stereo=True), 44100, "PCM_16"),
             "mono22k.flac": (_tone(0, 1.0, 22050), 22050, "PCM_16"),
             "vorbis16k.ogg": (_tone(10, 1.0, 16000), 16000, "VORBIS"),
             "float48k.wav": (_tone(41, 0.4, 48000), 48000, "FLOAT"),
             "long.wav": (_tone(0, 2.6, 16000), 16000, "PCM_16")}
    targets = {"stereo44k.wav": 41, "mono22k.flac": 0, "vorbis16k.ogg": 10, "float48k.wav": 41, "long.wav": 0}
    if "MP3" in sf.available_formats():
        files["tone.mp3"] = (_tone(41, 1.0, 44100), 44100, "MPEG_LAYER_III")
        targets["tone.mp3"] = 41
    for name, (audio, rate, subtype) in files.items():
        sf.write(tmp_path / name, audio, rate, subtype=subtype)
    out_json = tmp_path / "out.json"
    args = [str(tmp_path / n) for n in files] + ["--model", str(exported_run), "--top-k", "2", "--json", str(out_json)]
    assert cli_main(["predict", *args]) == 0
    printed = _parse(capsys.readouterr().out)
    assert set(printed) == {str(tmp_path / n) for n in files}
    classes = {"dog", "rain", "chainsaw"}
    for result in printed.values():
        labels, scores = zip(*result["top"])
        assert len(labels) == 2 and set(labels) <= classes and scores[0] >= scores[1] and 0 <= scores[1] <= 1
    for name, target in targets.items():  # each tone is its class's pitch
        assert printed[str(tmp_path / name)]["top"][0][0] == NAMES[target], name
    long = printed[str(tmp_path / "long.wav")]
    assert long["seconds"] == 2.6 and long["windows"] == 5  # 1 s windows at 0, .5, 1, 1.5 and 1.6 s
    assert printed[str(tmp_path / "float48k.wav")]["windows"] == 1  # shorter than a clip: padded

    payload = json.loads(out_json.read_text())
    assert payload["model"].endswith("deploy/model_int8.tflite") and payload["runtime"] == "tflm"
    assert payload["window_seconds"] == 1.0 and payload["hop_seconds"] == 0.5
    for r in payload["results"]:
        assert r["error"] is None and len(r["top_k"]) == 2
        assert [t["label"] for t in r["top_k"]] == [lab for lab, _ in printed[r["file"]]["top"]]
        assert [t["score"] for t in r["top_k"]] == pytest.approx([s for _, s in printed[r["file"]]["top"]], abs=1e-4)


def test_a_long_file_scores_the_mean_of_its_windows(exported_run, tmp_path, capsys):
    """3 s of one class's tone then 1 s of another's: seven 1 s windows, five of the first class, one
    mixed, one (the last) of the second. The file's scores are the mean of the windows' scores."""
    rate = 16000
    sf.write(tmp_path / "dog_then_saw.wav", np.concatenate([_tone(0, 3.0, rate), _tone(41, 1.0, rate)]), rate)
    classifier = predict.Classifier.load(exported_run)
    wave = data.decode_file(tmp_path / "dog_then_saw.wav", classifier.audio)
    probs, windows = classifier.probabilities(wave)
    assert windows == 7
    per_window = [classifier.probabilities(w)[0] for w in predict.split_windows(wave, rate, rate // 2)]
    np.testing.assert_allclose(probs, np.mean(per_window, axis=0), atol=1e-6)
    names = classifier.meta.class_names
    assert [names[int(np.argmax(p))] for p in per_window][:5] == ["dog"] * 5
    assert names[int(np.argmax(per_window[-1]))] == "chainsaw"  # the last window alone would say chainsaw
    assert cli_main(["predict", str(tmp_path / "dog_then_saw.wav"), "--model", str(exported_run)]) == 0
    top = _parse(capsys.readouterr().out)[str(tmp_path / "dog_then_saw.wav")]["top"]
    assert top[0][0] == "dog" and top[0][1] == pytest.approx(probs[names.index("dog")], abs=1e-4)


def test_same_decoding_and_scores_as_training(exported_run, dataset_dir):
    """A dataset clip (22.05 kHz, stereo) through predict equals the evaluation path."""
    classifier = predict.Classifier.load(exported_run)
    meta = data.read_metadata(dataset_dir)
    rows = meta[meta["channels"] == 2].head(1)
    wave = data.decode_file(rows["path"].iloc[0], classifier.audio)
    expected = data.load_waveforms(rows, classifier.audio, progress=False)
    np.testing.assert_allclose(wave, expected[0], atol=1e-6)
    probs, windows = classifier.probabilities(wave)
    feats = pipeline.feature_array(expected, classifier.meta.config, classifier.meta.normalization)
    logits = load_predictor(exported_run / "deploy" / "model_int8.tflite", "tflm")(feats)
    assert windows == 1
    np.testing.assert_allclose(probs, evaluate.softmax(logits)[0], atol=1e-6)
    assert probs.sum() == pytest.approx(1.0)


def test_unreadable_files_are_named(exported_run, tmp_path, capsys):
    (tmp_path / "text.wav").write_text("this is not audio")
    (tmp_path / "empty.flac").write_bytes(b"")
    sf.write(tmp_path / "full.wav", _tone(0, 1.0, 16000), 16000, subtype="PCM_16")
    (tmp_path / "truncated.wav").write_bytes((tmp_path / "full.wav").read_bytes()[:20000])
    cases = {"text.wav": "not a readable audio file", "empty.flac": "audio file is empty (0 bytes)",
             "missing.ogg": "file not found", "truncated.wav": "cannot decode audio"}
    for name, message in cases.items():
        assert cli_main(["predict", str(tmp_path / name), "--model", str(exported_run)]) == 1
        captured = capsys.readouterr()
        assert captured.out == ""
        assert f"error: {tmp_path / name}: {message}" in captured.err


def test_directory_keeps_going_past_a_bad_file(exported_run, tmp_path, capsys):
    folder = tmp_path / "clips"
    (folder / "sub").mkdir(parents=True)
    sf.write(folder / "a.wav", _tone(0, 1.0, 16000), 16000)
    sf.write(folder / "sub" / "c.flac", _tone(41, 1.0, 22050), 22050)
    (folder / "b.wav").write_bytes(b"RIFF....WAVEjunk")
    (folder / "notes.txt").write_text("not audio, not an audio extension: ignored")
    (folder / ".hidden.wav").write_text("hidden files are ignored")
    assert cli_main(["predict", str(folder), "--model", str(exported_run / "deploy" / "model_int8.tflite")]) == 1
    captured = capsys.readouterr()
    assert set(_parse(captured.out)) == {str(folder / "a.wav"), str(folder / "sub" / "c.flac")}
    assert f"error: {folder / 'b.wav'}:" in captured.err
    assert "1 of 3 file(s) could not be classified" in captured.err
    assert "notes.txt" not in captured.err and "hidden" not in captured.err


@pytest.mark.parametrize("runtime", ["litert", "tflm"])
def test_float_model(exported_run, tmp_path, capsys, runtime):
    sf.write(tmp_path / "a.wav", _tone(10, 1.0, 16000), 16000)
    out_json = tmp_path / "f.json"
    assert cli_main(["predict", str(tmp_path / "a.wav"), "--model", str(exported_run), "--float", "--runtime", runtime,
                         "--top-k", "5", "--json", str(out_json)]) == 0
    top = _parse(capsys.readouterr().out)[str(tmp_path / "a.wav")]["top"]
    assert len(top) == 3 and sum(score for _, score in top) == pytest.approx(1.0, abs=1e-3)  # all classes
    payload = json.loads(out_json.read_text())
    assert payload["model"].endswith("deploy/model_float.tflite") and payload["runtime"] == runtime


def test_model_errors(exported_run, tmp_path, capsys):
    sf.write(tmp_path / "a.wav", _tone(10, 1.0, 16000), 16000)
    assert cli_main(["predict", str(tmp_path / "a.wav"), "--model", str(tmp_path)]) == 1
    assert "no model_int8.tflite" in capsys.readouterr().err
    assert cli_main(["predict", str(tmp_path / "a.wav")]) == 1  # default tflite/ does not exist in the test folder
    assert "tflite/model_int8.tflite: model file not found" in capsys.readouterr().err
    assert cli_main(["predict", str(tmp_path / "a.wav"), "--model", str(exported_run), "--top-k", "0"]) == 2
