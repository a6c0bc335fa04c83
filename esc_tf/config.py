"""One configuration object for every stage of the pipeline.

A :class:`Config` is made of small dataclasses, one per stage. It round-trips through
YAML or JSON, and any field can be overridden with a dotted ``section.field=value``
string, so the CLI, notebooks and tests all build the same object.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

DEFAULT_DATA_DIR = "data/ESC-50"
DATA_DIR_ENV = "ESC_TF_DATA_DIR"


@dataclass
class DataConfig:
    """Where the dataset is and how it is split."""

    data_dir: str = ""  # empty: $ESC_TF_DATA_DIR, else ./data/ESC-50
    subset: str = "all"  # "all", "esc10" or "not-esc10" (the other 40 classes)
    split: str = "folds"  # "folds" (official cross-validation) or "stratified" (one 80/20 split)
    folds: list[int] = field(default_factory=list)  # test folds to run; empty = every fold present
    test_size: float = 0.2  # for split="stratified"
    val_fraction: float = 0.0  # > 0: early-stopping validation carved from the training clips (tune needs it)
    random_state: int = 42
    cache_dir: str = ".cache/esc_tf"  # decoded, resampled waveforms are kept here


@dataclass
class AudioConfig:
    """How clips are turned into fixed-length mono waveforms."""

    sample_rate: int = 16000
    clip_seconds: float = 5.0

    @property
    def clip_samples(self) -> int:
        return int(round(self.sample_rate * self.clip_seconds))


@dataclass
class FeatureConfig:
    """The front end: magnitude STFT -> mel -> log -> (DCT) -> per-coefficient normalisation."""

    kind: str = "logmel"  # "logmel" or "mfcc"
    frame_length: int = 1024  # equal to fft_length so the device FFT sees the same window
    hop_length: int = 512
    fft_length: int = 1024
    num_mel_bins: int = 64
    fmin: float = 20.0
    fmax: float = 8000.0
    num_mfcc: int = 13  # for kind="mfcc"
    # log(mel + offset). 1e-3 puts digital silence (mel 0: padded clips) at -6.9, next to the quietest sounds,
    # not at -13.8 as 1e-6 did: +1.6 to +2.6 pp on esc50-16k (README, Results). CMSIS-DSP arm_mfcc_f32
    # hard-codes 1e-6, so configs/mfcc_cnn.yaml keeps that.
    log_offset: float = 1e-3
    normalize: bool = True  # per-coefficient mean/std measured on the training clips only


@dataclass
class AugmentConfig:
    """Training-time augmentations; each is off when its strength is 0."""

    enabled: bool = True
    gain_db: float = 6.0  # uniform random gain in [-gain_db, +gain_db]
    noise_prob: float = 0.3  # probability of adding white noise
    noise_snr_db: tuple[float, float] = (10.0, 40.0)
    shift_seconds: float = 0.5  # circular time shift of up to this much
    speed_prob: float = 0.3  # probability of resampling (changes tempo and pitch together)
    speed_range: tuple[float, float] = (0.9, 1.1)
    filter_db: float = 0.0  # random equaliser: knot gains uniform in [-filter_db, +filter_db] dB (0: off)
    filter_knots: int = 3  # random knots between the lowest and highest mel band
    # logmel only: each clip's log-mels moved by a whole number of bands uniform in [-mel_shift, +mel_shift], the
    # edge band repeated (a pitch shift without a tempo change; the training side of model.mel_shifts). 0: off
    mel_shift: int = 0
    freq_mixstyle_prob: float = 0.0  # Freq-MixStyle: share of clips whose bands' mean and std over time are mixed
    freq_mixstyle_alpha: float = 0.3  # with a partner's, weight ~ Beta(alpha, alpha)
    time_masks: int = 2  # SpecAugment masks per clip
    time_mask_fraction: float = 0.1  # largest mask, as a fraction of the frames
    freq_masks: int = 2
    freq_mask_fraction: float = 0.15  # largest mask, as a fraction of the coefficients
    mixup_alpha: float = 0.3  # Beta(alpha, alpha) mixing of pairs
    mix_domain: str = "features"  # "features": mixup of the model inputs; "sound": mix the clips' sounds (esc_tf.augment)


@dataclass
class ModelConfig:
    """Which network to build."""

    preset: str = "dscnn"  # see esc_tf.model.PRESETS
    dropout: float = 0.3
    stem_filters: int = 16  # dscnn presets: channels of the strided first convolution
    # dscnn presets: the stem's (mel, frame) strides. [2, 4] on twice the frames (features.hop_length halved),
    # [4, 2] on twice the mels, keep the stem's output, and so the arena, as [2, 2] on the default front end.
    stem_strides: list[int] = field(default_factory=lambda: [2, 2])
    stage_filters: list[int] = field(default_factory=lambda: [48, 96, 160, 160])  # dscnn: one block per stage
    depthwise_kernel: int = 3  # dscnn presets: the blocks' depthwise kernel (odd; 5 widens their reach)
    # dscnn presets: how each pooling step halves the map. "max": 2x2 max; "max3": overlapping 3x3 max, stride 2;
    # "avg3": 3x3 mean, stride 2 (a box low-pass before subsampling, so a sound's phase on the grid matters less).
    pool: str = "max"
    # dscnn presets: how many leading stages use a full 3x3 convolution (Conv-BN-ReLU) instead of a
    # depthwise-separable block: more MACs and capacity where the map is largest, for few parameters.
    full_conv_stages: int = 0
    # dscnn presets: the stages (1 = first) whose blocks end with squeeze-and-excitation (Hu et al.): the block's
    # global mean, a bottleneck (channels / 16) and a sigmoid rescale its channels, so each clip weighs its own
    # channels. Few parameters; all of it runs in TFLM (MEAN, CONV_2D, LOGISTIC, MUL).
    squeeze_excite_stages: list[int] = field(default_factory=list)
    # dscnn presets: how the last map becomes one vector. "mean": global mean. "mean+max": mean over the mel
    # rows, then the mean plus the max over time (as PANNs), so a short event is not averaged away. "mel-rows": the
    # mean over time of each remaining mel row, rows concatenated (the classifier sees where in the spectrum).
    head: str = "mean"
    # Frames the model reads at once: 0 = the whole clip. Fewer: trained on a random crop of each clip; a clip
    # is scored by the mean softmax of clip_windows windows a stride apart from its start (features.window_starts),
    # as the device averages its last clip_windows inferences.
    input_frames: int = 0
    clip_windows: int = 3
    # Views of each window a clip is scored on: the window rotated circularly in time by 0, 1, ...,
    # time_rolls - 1 frames, softmax averaged (pipeline.model_inputs); the device runs time_rolls
    # inferences per window, each on a rotated copy of its feature ring. Training is unchanged.
    time_rolls: int = 1
    # logmel only: each of those views also moved by -mel_shifts .. +mel_shifts whole mel bands (the edge band
    # repeated; pipeline.shift_mels), as a sound a little higher or lower: (2 * mel_shifts + 1) x time_rolls
    # inferences per window, softmax averaged. The device moves the rows of its int8 input the same way.
    mel_shifts: int = 0
    # dscnn presets: copies of the blocks and classifier after the shared stem, each trained on its own loss;
    # the model outputs the mean of their logits, so one .tflite holds an ensemble (train.fit_model).
    branches: int = 1


@dataclass
class TrainConfig:
    """The optimiser and schedule."""

    epochs: int = 120
    batch_size: int = 32
    learning_rate: float = 3e-3
    weight_decay: float = 0.0  # > 0: AdamW, decoupled decay of the kernels (not BatchNorm or biases)
    ema_momentum: float = 0.0  # > 0: keep the exponential moving average of the weights (e.g. 0.998)
    # > 0: stochastic weight averaging (Izmailov et al. 2018). The cosine schedule ends at swa_learning_rate
    # swa_epochs before the end; those last epochs run at that constant rate, and the model ends training
    # holding the mean of its weights at the end of each (esc_tf.train.WeightAverage), BN statistics then
    # recomputed (recalibrate_batch_norm). Cosine schedule and no validation clips only.
    swa_epochs: int = 0
    swa_learning_rate: float = 3e-4
    label_smoothing: float = 0.0  # share of each target spread evenly over the classes (after mixup)
    lr_schedule: str = "cosine"  # "cosine", "onecycle" (warm-up, then cosine), "plateau" or "constant"
    early_stopping_patience: int = 40
    class_weights: bool = False
    recalibrate_batch_norm: bool = True  # BN statistics from the un-augmented training clips after fit
    seed: int = 42
    teacher_runs: list[str] = field(default_factory=list)  # finished runs whose models teach this one (esc_tf.distill)
    distill_weight: float = 0.5  # share of the loss taken by the teachers' probabilities (esc_tf.distill)
    distill_temperature: float = 1.0  # softmax temperature of teachers and student in the distillation term
    init_from: str = ""  # a finished run (its deploy/ model) on other classes to start from (esc_tf.transfer)
    # An ESC-50-layout folder whose clips of other classes train alongside this run's, each class with an
    # output that is dropped after training (esc_tf.auxiliary); auxiliary_subset picks those classes.
    auxiliary_dir: str = ""
    auxiliary_subset: str = "not-esc10"
    verbose: int = 1  # Keras fit verbosity: 0 silent, 1 progress bar, 2 one line per epoch


@dataclass
class PruneConfig:
    """tfmot magnitude pruning of each trained model, with fine-tuning."""

    enabled: bool = False  # measured: costs the small default model ~3 pp (reports/esc50-16k-micro)
    target_sparsity: float = 0.5  # fraction of each prunable kernel set to zero
    fine_tune_epochs: int = 10
    learning_rate: float = 2e-4


@dataclass
class ExportConfig:
    """int8 conversion, device budgets and where the deployable files go."""

    edge_eval: bool = True  # prune, quantise and score every CV fold's model on its test fold
    deploy: bool = True  # after CV, train the deployment model on all clips and export it
    representative_clips: int = 200  # calibration clips, drawn from training clips only
    arena_margin: float = 0.10  # arena written to model_settings.h = measured * (1 + margin), capped at the budget
    flash_budget_bytes: int = 131072  # refuse a larger int8 .tflite (0: no limit)
    arena_budget_bytes: int = 65536  # refuse a larger measured TFLM arena (0: no limit)
    publish_dir: str = "tflite"  # the exported files are mirrored here ("" to keep them in the run only)


@dataclass
class Config:
    """Everything a run needs; saved next to its results."""

    data: DataConfig = field(default_factory=DataConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    export: ExportConfig = field(default_factory=ExportConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dicts and lists (tuples become lists), ready for YAML or JSON."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def resolved_data_dir(self) -> Path:
        """The dataset folder: the configured one, else $ESC_TF_DATA_DIR, else ./data/ESC-50."""
        return Path(self.data.data_dir or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)


class ConfigError(ValueError):
    """A configuration file or override that cannot be applied."""


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
            if isinstance(value, bool) or float(value) != int(value):
                raise TypeError("expected an integer")
            return int(value)
        if annotation == "float":
            return float(value)
        if annotation == "str":
            return str(value)
        if annotation.startswith("list[int]"):
            if isinstance(value, int):
                return [value]
            return [int(v) for v in value]
        if annotation.startswith("list[str]"):
            if value is None:  # "section.field=" : an empty list
                return []
            if isinstance(value, (str, int, float)):  # one entry (a bare number is a name too)
                return [str(value)]
            return [str(v) for v in value]
        if annotation.startswith("tuple[float, float]"):
            lo, hi = (float(v) for v in value)
            return (lo, hi)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {value!r} is not a valid {annotation} ({exc})") from exc
    raise ConfigError(f"{where}: unsupported field type {annotation}")


def _section_from_dict(cls: type, values: dict[str, Any], section: str) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise ConfigError(f"unknown option(s) in [{section}]: {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(known)}")
    kwargs = {k: _coerce(v, str(known[k].type), f"{section}.{k}") for k, v in values.items()}
    return cls(**kwargs)


SECTIONS: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(Config)}  # type: ignore[misc]


def config_from_dict(values: dict[str, Any]) -> Config:
    """Build a Config from nested dicts; missing fields keep their defaults."""
    unknown = set(values) - set(SECTIONS)
    if unknown:
        raise ConfigError(f"unknown config section(s): {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(SECTIONS)}")
    return Config(**{name: _section_from_dict(cls, values.get(name) or {}, name)
                     for name, cls in SECTIONS.items()})


def load_config(path: str | Path) -> Config:
    """Read a YAML (.yaml/.yml) or JSON (.json) config file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from exc
    try:
        values = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from exc
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    try:
        return config_from_dict(values)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def save_config(config: Config, path: str | Path) -> None:
    """Write the config as YAML or JSON, chosen by the file extension."""
    path = Path(path)
    d = config.to_dict()
    text = json.dumps(d, indent=2) if path.suffix == ".json" else yaml.safe_dump(d, sort_keys=False)
    path.write_text(text)


def with_value(config: Config, key: str, value: Any) -> Config:
    """Return a copy of ``config`` with ``section.field`` set to ``value`` (coerced to its type)."""
    section, dot, name = key.strip().partition(".")
    values = config.to_dict()
    if not dot or section not in values or name not in values[section]:
        raise ConfigError(f"no option {key!r}; options look like section.field, see --help")
    values[section][name] = value
    return config_from_dict(values)


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
    """Every config option with its default, for --help."""
    lines = []
    defaults = Config().to_dict()
    for section, fields in defaults.items():
        for name, value in fields.items():
            lines.append(f"  {section}.{name} = {json.dumps(value)}")
    return "\n".join(lines)
