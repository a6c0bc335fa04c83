"""esc-tf teacher makes a table of out-of-fold targets; a run distils from it without leaking test clips."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from esc_tf import pipeline
from esc_tf.artifacts import ModelMeta
from esc_tf.cli.main import main as cli_main
from esc_tf.config import ConfigError, with_value, with_values
from esc_tf.data import dataset as data
from esc_tf.reporting.run_report import write_run_report
from esc_tf.runtime.predictors import clip_scores, load_predictor
from esc_tf.stages import teacher as teacher_stage
from esc_tf.stages import train
from esc_tf.teachers import embedders
from esc_tf.teachers.targets import TeacherTargets
from tests.conftest import small_config


@pytest.fixture(scope="module")
def teacher_table(tmp_path_factory, dataset_dir):
    tmp = tmp_path_factory.mktemp("teacher")
    config = small_config(dataset_dir, tmp)
    info = teacher_stage.make_teacher_targets(config, ["soundnet"], tmp / "teacher", progress=False)
    return tmp / "teacher", info, config


def test_the_table_covers_every_clip_and_records_its_teacher(teacher_table):
    folder, info, config = teacher_table
    table = TeacherTargets.load(folder)
    meta = data.load_dataset(config)
    assert table.filenames == meta["filename"].tolist()
    assert len(table.log_probs) == 5 + 10  # every fold, every pair of the 5 folds
    assert info["embedders"][0]["name"] == "soundnet" and len(info["embedders"][0]["weights_sha256"]) == 64
    # three pure tones: pretrained embeddings separate them even from two folds
    assert info["accuracy"]["two_folds_held_out"] > 0.8, info["accuracy"]
    assert "two folds held out" in (folder / "README.md").read_text()


def test_embeddings_are_cached_by_audio_and_weights(teacher_table, monkeypatch, tmp_path):
    folder, info, config = teacher_table

    def no_second_pass(*args, **kwargs):
        raise AssertionError("embedded again instead of reading the cache")

    monkeypatch.setattr(embedders.Embedder, "embed", no_second_pass)
    again = teacher_stage.make_teacher_targets(config, ["soundnet"], tmp_path / "again", progress=False)
    assert again["accuracy"] == info["accuracy"]


def test_a_distilled_fold_learns_each_clip_from_the_probe_that_held_out_its_fold_and_the_test_fold(
        teacher_table, dataset_dir, tmp_path):
    folder, _, _ = teacher_table
    config = with_values(small_config(dataset_dir, tmp_path), {
        "data.folds": [1], "prune.enabled": False, "distill.teacher_targets": str(folder),
        "distill.weight": 0.5, "distill.temperature": 2.0})
    meta = data.load_dataset(config)
    waves = data.load_waveforms(meta, config.audio, progress=False)
    table = train.teacher_table(config, meta, waves)
    split = data.make_splits(meta, config.data)[0]
    soft = train.teacher_soft_targets(config, split.name, meta, waves, split.train, split.test_fold, [], table,
                                      tmp_path)(None, None)
    fit_folds = meta["fold"].to_numpy()[split.train]
    for fold in np.unique(fit_folds):
        rows = np.flatnonzero(fit_folds == fold)
        logits = table.log_probs[(1, int(fold))][split.train[rows]] / 2.0
        expected = np.exp(logits - logits.max(axis=1, keepdims=True))
        np.testing.assert_allclose(soft[rows], expected / expected.sum(axis=1, keepdims=True), rtol=1e-5)
    run_dir = train.run_cross_validation(config, tmp_path / "runs", progress=False)
    write_run_report(run_dir, 0.0)
    report = json.loads((run_dir / "report.json").read_text())
    assert report["teacher_table"]["embedders"] == ["soundnet"]
    assert "## Teacher (knowledge distillation, `distill.teacher_targets`)" in (run_dir / "report.md").read_text()


def test_a_resumed_run_refuses_a_table_remade_since_it_started(teacher_table, dataset_dir, tmp_path):
    folder, _, config = teacher_table
    table_copy = tmp_path / "table"
    shutil.copytree(folder, table_copy)
    config = with_values(small_config(dataset_dir, tmp_path), {
        "data.folds": [1, 2], "prune.enabled": False, "distill.teacher_targets": str(table_copy),
        "export.edge_eval": False})
    run_dir = train.run_cross_validation(with_value(config, "data.folds", [1]), tmp_path / "runs", progress=False)
    remade = TeacherTargets.load(table_copy)
    remade.log_probs = {k: v * 0.5 for k, v in remade.log_probs.items()}
    remade.save(table_copy)
    with pytest.raises(ConfigError, match="teacher table"):
        train.run_cross_validation(config, tmp_path / "runs", run_dir=run_dir, progress=False)


def test_a_damaged_table_is_one_clear_error(teacher_table, tmp_path):
    folder, _, _ = teacher_table
    shutil.copytree(folder, tmp_path / "t")
    data_bytes = (tmp_path / "t" / "targets.npz").read_bytes()
    (tmp_path / "t" / "targets.npz").write_bytes(data_bytes[: len(data_bytes) // 2])
    with pytest.raises(ConfigError, match="unreadable"):
        TeacherTargets.load(tmp_path / "t")


def test_a_table_with_teacher_runs_or_without_official_folds_is_refused(teacher_table, dataset_dir, tmp_path):
    folder, _, _ = teacher_table
    config = with_value(small_config(dataset_dir, tmp_path), "distill.teacher_targets", str(folder))
    meta = data.load_dataset(config)
    waves = data.load_waveforms(meta, config.audio, progress=False)
    with pytest.raises(ConfigError, match="both set"):
        train.teacher_table(with_value(config, "distill.teacher_runs", ["runs/x"]), meta, waves)
    with pytest.raises(ConfigError, match="data.split 'folds'"):
        train.teacher_table(with_value(config, "data.split", "stratified"), meta, waves)
    with pytest.raises(ConfigError, match="other audio"):
        train.teacher_table(config, meta, waves * 0.5)


def test_the_command_names_a_bad_embedder_in_one_line(dataset_dir, tmp_path, capsys):
    code = cli_main(["teacher", "--data-dir", str(dataset_dir), "--embedders", "soundnet,vggish",
                     "--out", str(tmp_path / "t")])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: teacher embedder 'vggish' is unknown; use one of soundnet, aisfx"]
    assert not (tmp_path / "t").exists()
    assert cli_main(["teacher", "--data-dir", str(dataset_dir), "--folds", "1", "--out", str(tmp_path / "t")]) == 1
    assert "leave them out" in capsys.readouterr().err


def test_networks_of_a_finished_run_join_the_teacher_each_on_clips_it_never_trained_on(
        exported_run, dataset_dir, tmp_path):
    config = small_config(dataset_dir, tmp_path)
    out = tmp_path / "ensemble"
    info = teacher_stage.make_teacher_targets(config, ["soundnet"], out, cnn_runs=[str(exported_run)],
                                              progress=False)
    assert set(info["accuracy_of_parts"]) == {"probe", "cnn_members"}
    meta = data.load_dataset(config)
    trained = sorted(p.name for p in (out / "members" / exported_run.name).iterdir())
    # the run's fold1 model serves fold 1; every other single fold and every pair gets a model trained here
    assert trained == ["heldout-" + "-".join(map(str, s)) for s in
                       [(1, 2), (1, 3), (1, 4), (1, 5), (2,), (2, 3), (2, 4), (2, 5), (3,), (3, 4), (3, 5), (4,),
                        (4, 5), (5,)]]
    for folder in (out / "members" / exported_run.name).iterdir():
        held_out = [int(f) for f in folder.name.split("-")[1:]]
        seen = set(json.loads((folder / "model_meta.json").read_text())["trained_on"])
        assert seen and not seen & set(meta.loc[meta["fold"].isin(held_out), "filename"])
    # the teacher is the probe and the members half and half, in probability, row by row
    table = TeacherTargets.load(out)
    probe_only = teacher_stage.make_teacher_targets(config, ["soundnet"], tmp_path / "probe-only", progress=False)
    probe = TeacherTargets.load(tmp_path / "probe-only")
    assert probe_only["accuracy"] == info["accuracy_of_parts"]["probe"]
    rows = np.flatnonzero((meta["fold"].isin([2, 3])).to_numpy())
    member_model = out / "members" / exported_run.name / "heldout-2-3" / "model.keras"
    member_meta = ModelMeta.for_model(member_model)
    waves = data.load_waveforms(meta, config.audio, config.data.cache_dir, progress=False)
    member = clip_scores(load_predictor(member_model, "keras", member_meta),
                         pipeline.feature_array(waves[rows], member_meta.config, member_meta.normalization),
                         member_meta.config)
    expected = 0.5 * np.exp(probe.log_probs[(2, 3)][rows]) + 0.5 * member
    np.testing.assert_allclose(np.exp(table.log_probs[(2, 3)][rows]), expected, rtol=1e-4, atol=1e-6)
    assert "cnn members" in (out / "README.md").read_text()
    # the same command again reuses every member (same run, config and audio)
    stamps = {p: p.stat().st_mtime_ns for p in (out / "members").rglob("model.keras")}
    teacher_stage.make_teacher_targets(config, ["soundnet"], out, cnn_runs=[str(exported_run)], progress=False)
    assert stamps == {p: p.stat().st_mtime_ns for p in (out / "members").rglob("model.keras")}
    # a member run that reads audio otherwise is refused
    with pytest.raises(ConfigError, match="other settings"):
        teacher_stage.make_teacher_targets(with_value(config, "audio.sample_rate", 8000), ["soundnet"],
                                           tmp_path / "other-rate", cnn_runs=[str(exported_run)], progress=False)


def test_a_distilled_run_cannot_join_a_teacher(teacher_table, dataset_dir, tmp_path):
    folder, _, _ = teacher_table
    config = with_values(small_config(dataset_dir, tmp_path), {"data.folds": [1], "prune.enabled": False,
                                                               "distill.teacher_targets": str(folder)})
    run_dir = train.run_cross_validation(config, tmp_path / "runs", progress=False)
    with pytest.raises(ConfigError, match="learned from teachers"):
        teacher_stage.make_teacher_targets(config, ["soundnet"], tmp_path / "t", cnn_runs=[str(run_dir)])
    assert not (tmp_path / "t").exists()


def test_the_command_names_a_member_run_that_is_not_a_run_in_one_line(dataset_dir, tmp_path, capsys):
    code = cli_main(["teacher", "--data-dir", str(dataset_dir), "--embedders", "soundnet",
                     "--cnn-runs", str(tmp_path / "no-run"), "--out", str(tmp_path / "t")])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--cnn-runs" in err[0] and "no config.yaml" in err[0]
    assert not (tmp_path / "t").exists()
