"""One configuration object for every stage of the pipeline.

A :class:`Config` is made of small frozen dataclasses, one per stage. It round-trips through
YAML or JSON, and any field can be overridden with a dotted ``section.field=value`` string, so
the CLI, notebooks and tests all build the same object. Each field is declared with
:func:`option`: its default, the range of values it accepts (checked whenever a Config is built
from a dict, a file or an override) and its roles, from which the lists of options that build
the network, only change the scoring, or came late are derived (:func:`options_with_role`).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

DEFAULT_DATA_DIR = "data/ESC-50"
DATA_DIR_ENV = "ESC_TF_DATA_DIR"
FOLDS = (1, 2, 3, 4, 5)  # ESC-50's official cross-validation folds

# What an option changes, besides the results: declared on its field, read by options_with_role().
ROLES = {
    "network": "the shapes of the network's weights (a transfer source must agree: esc_tf.models.transfer)",
    "scoring": "only how a trained model's clip score is formed: may change after training (esc-tf deploy --rescore)",
    "late": "added after run folders were named by a hash of the config: left out of that hash at the value that "
            "does what esc-tf did before it existed, so a run started then keeps its folder "
            "(esc_tf.stages.train.run_dir_for)",
}


class ConfigError(ValueError):
    """A configuration file or override that cannot be applied."""


@dataclass(frozen=True)
class Check:
    """The values an option accepts: ``allows(value)``, described by ``text`` in error messages."""

    allows: Callable[[Any], bool]
    text: str


def at_least(low: float) -> Check:
    """Values ``>= low``."""
    return Check(lambda v: v >= low, f">= {low}")


def above(low: float) -> Check:
    """Values ``> low``."""
    return Check(lambda v: v > low, f"> {low}")


def within(low: float, high: float, *, open_low: bool = False, open_high: bool = False) -> Check:
    """``low <= v <= high``, either end excluded when open."""
    def allows(v: float) -> bool:
        return (low < v if open_low else low <= v) and (v < high if open_high else v <= high)
    return Check(allows, f"in {'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}")


def one_of(*choices: Any) -> Check:
    """Values among ``choices``."""
    return Check(lambda v: v in choices, f"one of {', '.join(map(repr, choices))}")


def each(check: Check) -> Check:
    """Every entry of a list within ``check``."""
    return Check(lambda v: all(check.allows(x) for x in v), f"a list of values {check.text}")


def ascending_pair(inner: Check | None = None) -> Check:
    """A ``(low, high)`` pair with ``low <= high``, both within ``inner`` when given."""
    def allows(v: tuple[float, float]) -> bool:
        return v[0] <= v[1] and (inner is None or (inner.allows(v[0]) and inner.allows(v[1])))
    return Check(allows, "a pair low <= high" + (f", both {inner.text}" if inner else ""))


PROBABILITY = within(0, 1)
FRACTION = within(0, 1, open_high=True)


_SAME_AS_DEFAULT = object()


def option(default: Any, *, check: Check | None = None, role: str | tuple[str, ...] = (),
           before: Any = _SAME_AS_DEFAULT) -> Any:
    """A config field: its default (a list is copied for each config), the range of values it accepts,
    its roles (keys of :data:`ROLES`) and, for a late option whose default has since changed, ``before``:
    the value that does what esc-tf did before the option existed."""
    roles = (role,) if isinstance(role, str) else role
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown option role(s) {sorted(unknown)}; known: {', '.join(ROLES)}")
    metadata = {"check": check, "roles": frozenset(roles),
                "before": default if before is _SAME_AS_DEFAULT else before}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class DataConfig:
    """Where the dataset is and how it is split."""

    data_dir: str = option("")  # empty: $ESC_TF_DATA_DIR, else ./data/ESC-50
    # "all", "esc10" or "not-esc10" (the other 40 classes)
    subset: str = option("all", check=one_of("all", "esc10", "not-esc10"))
    # "folds" (official cross-validation) or "stratified" (one split, test_size held out)
    split: str = option("folds", check=one_of("folds", "stratified"))
    # test folds to run; empty = every fold present
    folds: list[int] = option([], check=each(within(min(FOLDS), max(FOLDS))))
    test_size: float = option(0.2, check=within(0, 1, open_low=True, open_high=True))  # for split="stratified"
    # > 0: early-stopping validation carved from the training clips (tune needs it)
    val_fraction: float = option(0.0, check=FRACTION)
    random_state: int = option(42)  # seed of the stratified split and of the validation clips
    cache_dir: str = option(".cache/esc_tf")  # decoded, resampled waveforms are kept here


@dataclass(frozen=True)
class AudioConfig:
    """How clips are turned into fixed-length mono waveforms."""

    sample_rate: int = option(16000, check=within(1000, 192000))
    clip_seconds: float = option(5.0, check=within(0, 600, open_low=True))  # a sound event, not a recording

    @property
    def clip_samples(self) -> int:
        return int(round(self.sample_rate * self.clip_seconds))


@dataclass(frozen=True)
class FeatureConfig:
    """The front end: magnitude STFT -> mel -> log -> (DCT) -> per-coefficient normalisation.

    Settings the device front end cannot reproduce are refused by
    :func:`esc_tf.audio.features.check_feature_config`.
    """

    kind: str = option("logmel", check=one_of("logmel", "mfcc"))
    # equal to fft_length so the device FFT sees the same window
    frame_length: int = option(1024, check=within(16, 65536))
    hop_length: int = option(512, check=within(1, 65536))
    fft_length: int = option(1024, check=within(16, 65536))
    num_mel_bins: int = option(64, check=within(1, 512))
    fmin: float = option(20.0, check=at_least(0))
    fmax: float = option(8000.0, check=above(0))
    num_mfcc: int = option(13, check=within(1, 512))  # for kind="mfcc"
    # log(mel + offset): 0.3 is a floor above the 8-bit quantisation noise of the esc50-16k training pool
    # (reports/bit-depth). CMSIS-DSP arm_mfcc_f32 hard-codes 1e-6, so configs/mfcc_cnn.yaml keeps that.
    log_offset: float = option(0.3, check=above(0))
    normalize: bool = option(True)  # per-coefficient mean/std measured on the training clips only
    # each clip (on the device: each window the model scores) divided by its peak absolute sample before the
    # STFT, so a recording's gain does not change what the model sees (esc_tf.audio.features.level_normalized)
    peak_normalize: bool = option(True, role="late", before=False)


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentations (esc_tf.augment); each is off when its strength is 0."""

    enabled: bool = option(True)
    gain_db: float = option(6.0, check=at_least(0))  # uniform random gain in [-gain_db, +gain_db]
    noise_prob: float = option(0.3, check=PROBABILITY)  # probability of adding white noise
    noise_snr_db: tuple[float, float] = option((10.0, 40.0), check=ascending_pair())
    shift_seconds: float = option(0.5, check=at_least(0))  # circular time shift of up to this much
    speed_prob: float = option(0.3, check=PROBABILITY)  # probability of resampling (changes tempo and pitch together)
    speed_range: tuple[float, float] = option((0.9, 1.1), check=ascending_pair(above(0)))
    # logmel only: each clip's log-mels moved by a whole number of bands uniform in [-mel_shift, +mel_shift], the
    # edge band repeated (a pitch shift without a tempo change; the training side of model.mel_shifts). 0: off
    mel_shift: int = option(2, check=at_least(0), role="late", before=0)
    # Freq-MixStyle: share of clips whose bands' mean and std over time are mixed with a partner's,
    # weight ~ Beta(freq_mixstyle_alpha, freq_mixstyle_alpha)
    freq_mixstyle_prob: float = option(0.0, check=PROBABILITY, role="late")
    freq_mixstyle_alpha: float = option(0.3, check=above(0), role="late")
    time_masks: int = option(2, check=at_least(0))  # SpecAugment masks per clip
    time_mask_fraction: float = option(0.1, check=PROBABILITY)  # largest mask, as a fraction of the frames
    freq_masks: int = option(2, check=at_least(0))
    freq_mask_fraction: float = option(0.15, check=PROBABILITY)  # largest mask, as a fraction of the coefficients
    mixup_alpha: float = option(0.3, check=at_least(0))  # Beta(alpha, alpha) mixing of pairs of model inputs


@dataclass(frozen=True)
class ModelConfig:
    """Which network to build, and how a clip is scored."""

    preset: str = option("dscnn", check=one_of("seed", "cnn", "dscnn"), role="network")  # esc_tf.models.networks
    dropout: float = option(0.3, check=FRACTION)
    # dscnn: channels of the strided first convolution
    stem_filters: int = option(16, check=at_least(1), role="network")
    # dscnn: one depthwise-separable block per stage, a pool between stages
    stage_filters: list[int] = option([48, 128, 160, 160], check=each(at_least(1)), role="network")
    # dscnn: how many of the last stages run at the resolution of the stage before them (no pool before
    # them): more multiply-accumulates and a smaller receptive field for the same weights
    unpooled_last_stages: int = option(2, check=at_least(0), role="late", before=0)
    # Views a clip is scored on: its features rotated circularly in time by 0, 1, ..., time_rolls - 1
    # frames, softmax averaged (pipeline.model_inputs); the device runs time_rolls inferences, each on a
    # rotated copy of its feature ring. Training is unchanged.
    time_rolls: int = option(4, check=at_least(1), role=("scoring", "late"), before=1)
    # logmel only: each of those views also moved by -mel_shifts .. +mel_shifts whole mel bands (the edge band
    # repeated; pipeline.shift_mels), as a sound a little higher or lower: (2 * mel_shifts + 1) x time_rolls
    # inferences per clip, softmax averaged. The device moves the rows of its int8 input the same way.
    mel_shifts: int = option(0, check=at_least(0), role=("scoring", "late"))


@dataclass(frozen=True)
class TrainConfig:
    """The optimiser (Adam) and schedule."""

    epochs: int = option(300, check=at_least(1))
    batch_size: int = option(32, check=at_least(1))
    learning_rate: float = option(3e-3, check=above(0))
    # "cosine": annealed to 0 over the epochs; "plateau": halved when the validation loss stalls
    # (needs data.val_fraction > 0)
    lr_schedule: str = option("cosine", check=one_of("cosine", "plateau"))
    early_stopping_patience: int = option(40, check=at_least(1))  # epochs without a better validation loss
    recalibrate_batch_norm: bool = option(True)  # BN statistics from the un-augmented training clips after fit
    seed: int = option(42)
    # a finished run (its deploy/ model) on other classes to start from (esc_tf.models.transfer)
    init_from: str = option("", role="late")
    verbose: int = option(1, check=one_of(0, 1, 2))  # 0 silent, 1 one progress bar per fold, 2 one line per epoch
    # where the model trains (esc_tf.stages.strategy): "auto" (every GPU when there are several, else one
    # device), "mirrored" (every GPU, or every logical CPU) or "multi_worker" (the cluster TF_CONFIG describes)
    distribute: str = option("auto", check=one_of("auto", "mirrored", "multi_worker"))


@dataclass(frozen=True)
class DistillConfig:
    """Knowledge distillation from finished runs' models or a table of teacher targets (esc_tf.teachers)."""

    teacher_runs: list[str] = option([], role="late")  # finished runs whose models teach this one
    # a folder of out-of-fold teacher targets written by esc-tf teacher (instead of teacher_runs)
    teacher_targets: str = option("", role="late")
    # share of the loss taken by the teachers' probabilities
    weight: float = option(0.5, check=within(0, 1, open_low=True), role="late")
    # softmax temperature of teachers and student in the distillation term (1: the teachers' own probabilities)
    temperature: float = option(1.0, check=at_least(1), role="late")


@dataclass(frozen=True)
class PruneConfig:
    """tfmot magnitude pruning of each trained model, with fine-tuning."""

    enabled: bool = option(False)  # measured: costs the small default model ~3 pp (reports/esc50-16k-micro)
    target_sparsity: float = option(0.5, check=FRACTION)  # fraction of each prunable kernel set to zero
    fine_tune_epochs: int = option(10, check=at_least(1))
    learning_rate: float = option(2e-4, check=above(0))


@dataclass(frozen=True)
class ExportConfig:
    """int8 conversion, device budgets and where the deployable files go."""

    edge_eval: bool = option(True)  # prune, quantise and score every CV fold's model on its test fold
    deploy: bool = option(True)  # after CV, train the deployment model on all clips and export it
    representative_clips: int = option(200, check=at_least(1))  # calibration clips, drawn from training clips only
    # arena written to model_settings.h = measured * (1 + margin), capped at the budget
    arena_margin: float = option(0.10, check=at_least(0))
    flash_budget_bytes: int = option(131072, check=at_least(0))  # refuse a larger int8 .tflite (0: no limit)
    arena_budget_bytes: int = option(65536, check=at_least(0))  # refuse a larger measured TFLM arena (0: no limit)
    publish_dir: str = option("tflite")  # the exported files are mirrored here ("" to keep them in the run only)


@dataclass(frozen=True)
class Config:
    """Everything a run needs; saved next to its results."""

    data: DataConfig = field(default_factory=DataConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    export: ExportConfig = field(default_factory=ExportConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dicts and lists (tuples become lists), ready for YAML or JSON."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def resolved_data_dir(self) -> Path:
        """The dataset folder: the configured one, else $ESC_TF_DATA_DIR, else ./data/ESC-50."""
        return Path(self.data.data_dir or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)


SECTIONS: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(Config)}  # type: ignore[misc]

# Options removed because their measurements did not pay (docs/experiments.md), with the value the remaining
# code implements. Files written before their removal (config.yaml, model_meta.json) hold them at that value:
# such an entry is dropped on loading; any other value is refused.
RETIRED: dict[str, Any] = {
    "augment.filter_db": 0.0, "augment.filter_knots": 3, "augment.mix_domain": "features",
    "model.stem_strides": [2, 2], "model.depthwise_kernel": 3, "model.pool": "max", "model.head": "mean",
    "model.full_conv_stages": 0, "model.squeeze_excite_stages": [], "model.input_frames": 0, "model.clip_windows": 3,
    "model.branches": 1, "train.weight_decay": 0.0, "train.ema_momentum": 0.0, "train.swa_epochs": 0,
    "train.swa_learning_rate": 3e-4, "train.label_smoothing": 0.0, "train.class_weights": False,
    "train.auxiliary_dir": "", "train.auxiliary_subset": "not-esc10",
}

# Options that moved: their old name -> their name now. Files written before hold the old name.
MOVED: dict[str, str] = {
    "train.teacher_runs": "distill.teacher_runs",
    "train.distill_weight": "distill.weight",
    "train.distill_temperature": "distill.temperature",
}

# Values that were renamed: option -> {old value: its name now}. Files written before hold the old value.
RENAMED_VALUES: dict[str, dict[Any, Any]] = {"model.preset": {"default": "cnn"}}


def option_fields() -> dict[str, dataclasses.Field]:
    """Every option as ``{"section.name": its dataclass field}``, in declaration order."""
    return {f"{section}.{f.name}": f for section, cls in SECTIONS.items() for f in dataclasses.fields(cls)}


def options_with_role(role: str) -> tuple[str, ...]:
    """The ``section.name`` of every option declared with ``role`` (a key of :data:`ROLES`)."""
    if role not in ROLES:
        raise ValueError(f"unknown option role {role!r}; known: {', '.join(ROLES)}")
    return tuple(key for key, f in option_fields().items() if role in f.metadata["roles"])


def value_before(key: str) -> Any:
    """What the late option ``section.name`` did before it existed (its ``before`` value)."""
    return option_fields()[key].metadata["before"]


def option_value(config: Config, key: str) -> Any:
    """The value of the option ``section.name`` in ``config``."""
    section, _, name = key.partition(".")
    return getattr(getattr(config, section), name)


def section_differences(mine: object, theirs: object) -> str:
    """``name: theirs vs mine`` for each field of two config sections that differs."""
    a, b = mine.__dict__, theirs.__dict__
    return ", ".join(f"{k}: {b.get(k)!r} vs {a.get(k)!r}" for k in a if a.get(k) != b.get(k))


def check_same_front_end(mine: Config, theirs: Config, who: str, role: str) -> None:
    """Raise :class:`ConfigError` unless a model trained under ``theirs`` (the ``role``, e.g. a teacher,
    at ``who``) reads audio and features exactly as ``mine`` does."""
    for section in ("audio", "features"):
        differ = section_differences(getattr(mine, section), getattr(theirs, section))
        if differ:
            raise ConfigError(f"{who}: its [{section}] settings differ from this run's ({role} vs this run: "
                              f"{differ}); a {role} must read the same features")


def _coerce(value: Any, annotation: str, where: str) -> Any:
    """Convert a parsed value (from YAML/JSON or a CLI string) to a field's declared type."""
    if isinstance(value, str) and not annotation.startswith("str"):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{where}: cannot parse {value!r}: {exc}") from exc
    try:
        if annotation == "bool":
            if not isinstance(value, bool):
                raise TypeError("expected true or false")
            return value
        if annotation == "int":
            return _integer(value)
        if annotation == "float":
            number = float(value)
            if not math.isfinite(number):
                raise ValueError("expected a finite number")
            return number
        if annotation == "str":
            return str(value)
        if annotation.startswith("list[int]"):
            if isinstance(value, int):
                return [_integer(value)]
            return [_integer(v) for v in value]
        if annotation.startswith("list[str]"):
            if value is None:  # "section.field=" : an empty list
                return []
            if isinstance(value, (str, int, float)):  # one entry (a bare number is a name too)
                return [str(value)]
            return [str(v) for v in value]
        if annotation.startswith("tuple[float, float]"):
            lo, hi = (float(v) for v in value)
            return (lo, hi)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ConfigError(f"{where}: {value!r} is not a valid {annotation} ({exc})") from exc
    raise ConfigError(f"{where}: unsupported field type {annotation}")


def _integer(value: Any) -> int:
    """``value`` as an int, refusing booleans and numbers with a fraction (1.7 is not 1)."""
    if isinstance(value, bool) or float(value) != int(value):
        raise TypeError("expected an integer")
    return int(value)


def _checked(key: str, f: dataclasses.Field, raw: Any) -> Any:
    """``raw`` coerced to the field's type, after checking it is in the field's range."""
    value = _coerce(raw, str(f.type), key)
    check = f.metadata.get("check")
    if check is not None and not check.allows(value):
        raise ConfigError(f"{key}: {value!r} is out of range; it must be {check.text}")
    return value


def _without_retired(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (nested dicts) with moved options under their new names, renamed values
    (:data:`RENAMED_VALUES`) under theirs and retired options dropped, refusing a retired option that holds a
    value the code no longer implements."""
    out = {section: dict(fields or {}) for section, fields in values.items()}
    for old, new in MOVED.items():
        section, _, name = old.partition(".")
        if name in out.get(section, {}):
            new_section, _, new_name = new.partition(".")
            out.setdefault(new_section, {})[new_name] = out[section].pop(name)
    for key, renamed in RENAMED_VALUES.items():
        section, _, name = key.partition(".")
        value = out.get(section, {}).get(name)
        if isinstance(value, str) and value in renamed:
            out[section][name] = renamed[value]
    for key, kept in RETIRED.items():
        section, _, name = key.partition(".")
        if name not in out.get(section, {}):
            continue
        value = out[section].pop(name)
        if value != kept:
            raise ConfigError(f"{key}: {value!r} is not possible any more: the option was removed (see "
                              f"docs/experiments.md); only its old default {kept!r} is accepted")
    return out


def _section_from_dict(cls: type, values: dict[str, Any], section: str) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise ConfigError(f"unknown option(s) in [{section}]: {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(known)}")
    return cls(**{k: _checked(f"{section}.{k}", known[k], v) for k, v in values.items()})


def config_from_dict(values: dict[str, Any], written_by_esc_tf: bool = False) -> Config:
    """Build a Config from nested dicts; missing fields keep their defaults. Every value is checked
    against its option's range; retired and moved options are handled as :data:`RETIRED` and
    :data:`MOVED` say. ``written_by_esc_tf``: the dicts are a whole config that esc-tf saved (a run's
    ``config.yaml``, a ``model_meta.json``), so an option they lack did not exist yet and takes the value
    that does what esc-tf did then (:func:`value_before`), not today's default."""
    if not isinstance(values, dict):
        raise ConfigError(f"expected a mapping of sections ({', '.join(SECTIONS)}), not {type(values).__name__}")
    not_mappings = [name for name, fields in values.items() if fields is not None and not isinstance(fields, dict)]
    if not_mappings:
        raise ConfigError(f"section [{not_mappings[0]}] must be a mapping of options, not "
                          f"{type(values[not_mappings[0]]).__name__}")
    unknown = set(values) - set(SECTIONS)
    if unknown:
        raise ConfigError(f"unknown config section(s): {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(SECTIONS)}")
    values = _without_retired(values)
    if written_by_esc_tf:
        values = _with_values_before(values)
    return Config(**{name: _section_from_dict(cls, values.get(name) or {}, name)
                     for name, cls in SECTIONS.items()})


def _with_values_before(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with every late option they lack set to its :func:`value_before`."""
    filled = {name: dict(fields or {}) for name, fields in values.items()}
    for key in options_with_role("late"):
        section, _, name = key.partition(".")
        filled.setdefault(section, {}).setdefault(name, value_before(key))
    return filled


SAVED_MARK = "# written by esc-tf: an option missing here did not exist yet"
RUN_RECORDS = ("inputs.json", "report.json")  # beside a config.yaml, they show a run (or a copy of its report)


def is_saved_config(path: Path, text: str) -> bool:
    """Whether the config file at ``path`` (holding ``text``) is one esc-tf saved, not a recipe a person wrote:
    it starts with :data:`SAVED_MARK`, or it is a run's ``config.yaml`` (:data:`RUN_RECORDS` beside it)."""
    return text.startswith(SAVED_MARK) or (path.name == "config.yaml"
                                           and any((path.parent / name).is_file() for name in RUN_RECORDS))


def load_config(path: str | Path, written_by_esc_tf: bool | None = None) -> Config:
    """Read a YAML (.yaml/.yml) or JSON (.json) config file (``written_by_esc_tf``: as :func:`config_from_dict`;
    None: as :func:`is_saved_config` finds)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from exc
    if written_by_esc_tf is None:
        written_by_esc_tf = is_saved_config(path, text)
    try:
        values = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from exc
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    try:
        return config_from_dict(values, written_by_esc_tf)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def config_text(config: Config, suffix: str = ".yaml") -> str:
    """The config as a YAML document, or JSON when ``suffix`` is ``.json`` (the inverse of :func:`load_config`;
    :func:`esc_tf.artifacts.save_config` writes it)."""
    d = config.to_dict()
    return json.dumps(d, indent=2) if suffix == ".json" else f"{SAVED_MARK}\n" + yaml.safe_dump(d, sort_keys=False)


def with_values(config: Config, values: dict[str, Any]) -> Config:
    """Return a copy of ``config`` with each ``section.field`` of ``values`` set (coerced and checked)."""
    changed = config.to_dict()
    for key, value in values.items():
        key = key.strip()
        if key in RETIRED:
            raise ConfigError(f"{key}: the option was removed (see docs/experiments.md)")
        if key in MOVED:
            raise ConfigError(f"{key}: the option is now {MOVED[key]}")
        section, dot, name = key.partition(".")
        if not dot or section not in changed or name not in changed[section]:
            raise ConfigError(f"no option {key!r}; options look like section.field, see --help")
        changed[section][name] = value
    return config_from_dict(changed)


def with_value(config: Config, key: str, value: Any) -> Config:
    """Return a copy of ``config`` with ``section.field`` set to ``value`` (coerced and checked)."""
    return with_values(config, {key: value})


def apply_override(config: Config, assignment: str) -> Config:
    """Return a copy of ``config`` with a ``section.field=value`` string applied."""
    key, sep, raw = assignment.partition("=")
    if not sep:
        raise ConfigError(f"override {assignment!r} must look like section.field=value")
    return with_value(config, key, raw)


def apply_overrides(config: Config, assignments: Iterable[str]) -> Config:
    """:func:`apply_override` for each ``section.field=value`` string, in order."""
    for assignment in assignments:
        config = apply_override(config, assignment)
    return config


def describe_options() -> str:
    """Every config option with its default and the values it accepts, for --help."""
    lines = []
    defaults = Config().to_dict()
    fields = option_fields()
    for section, values in defaults.items():
        for name, value in values.items():
            check = fields[f"{section}.{name}"].metadata["check"]
            lines.append(f"  {section}.{name} = {json.dumps(value)}" + (f"  ({check.text})" if check else ""))
    return "\n".join(lines)
