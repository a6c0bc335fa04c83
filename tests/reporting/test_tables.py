"""esc_tf.reporting.tables: what a training command asked for, as a recipe label."""
from __future__ import annotations

from esc_tf.config import Config
from esc_tf.reporting.tables import _changed_defaults_label, recipe_label, same_recipe


def test_a_recipe_label_keeps_what_changes_the_recipe_and_drops_where_things_are():
    command = ("esc-tf train --data-dir DATA/esc50-16k --config configs/micro_wide.yaml --folds 1,2 "
               "--set train.seed=7 --set augment.mel_shift=2 --set export.publish_dir= --preset dscnn")
    assert recipe_label(command) == "configs/micro_wide.yaml, augment.mel_shift=2, preset dscnn"
    assert recipe_label("esc-tf train --set train.init_from=runs/x") == "built-in default"


def test_the_shorthand_flags_of_train_are_labelled_as_the_options_they_set():
    command = "esc-tf train --data-dir D --epochs 60 --batch-size 16 --lr=0.01 --seed 3"
    assert recipe_label(command) == ("built-in default, train.epochs=60, train.batch_size=16, "
                                     "train.learning_rate=0.01")


def test_flags_written_with_an_equals_sign_are_one_word():
    command = "esc-tf train --verbose=1 --config=a.yaml --set=model.time_rolls=4 --runs-root=r --split stratified"
    assert recipe_label(command) == "a.yaml, model.time_rolls=4, split stratified"


def test_a_report_written_before_a_late_option_existed_is_the_recipe_it_ran():
    """A run saved before ``model.time_rolls`` existed was scored on one view: it is not today's default recipe,
    and its built-in-default label says how it differs; a run that names every option is today's default."""
    today = Config().to_dict()
    earlier = Config().to_dict()
    del earlier["model"]["time_rolls"], earlier["distill"]["teacher_targets"]
    assert same_recipe(today, today) and not same_recipe(today, earlier)
    one_view = Config().to_dict()
    one_view["model"]["time_rolls"] = 1
    assert same_recipe(one_view, earlier)
    assert _changed_defaults_label("built-in default", earlier) == "built-in default, model.time_rolls=1"
    earlier["model"]["stage_filters"] = [8, 8]
    assert _changed_defaults_label("built-in default", earlier) == ("built-in default, model.time_rolls=1, "
                                                                    "model.stage_filters=[8, 8]")
    assert _changed_defaults_label("built-in default", today) == "built-in default"
    assert _changed_defaults_label("configs/x.yaml", earlier) == "configs/x.yaml"
