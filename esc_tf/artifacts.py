"""What the stages leave on disk: file names, model metadata, fold results, provenance, and the one
atomic writer every artefact goes through.

Everything here is plain data plus JSON; nothing imports TensorFlow, so any layer may use it.
"""
from __future__ import annotations

import io
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import numpy as np

from esc_tf.config import Config, config_from_dict, config_text

META_FILE = "model_meta.json"  # front end, normalisation and labels, beside every model
MODEL_FILE = "model.keras"  # a trained Keras model, beside its META_FILE
RESULT_FILE = "result.json"  # one fold's test-fold scores (FoldResult)
EDGE_FILE = "edge.json"  # one fold's pruned / int8 / TFLM comparison
DEPLOY_DIR = "deploy"  # the run's deployment model, trained on every clip
COMMANDS_FILE = "commands.txt"  # every command that wrote into a run folder
REPORT_FILE = "report.json"  # a run's pooled results, written by esc_tf.reporting
INPUTS_FILE = "inputs.json"  # what a run was started on: a resumed run must find the same


class ModelError(ValueError):
    """A model file that cannot be loaded, run, or deployed as configured."""


# --------------------------------------------------------------------------- the one writer

def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, flushed to disk and renamed,
    so a reader sees the old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """:func:`write_bytes_atomic` for UTF-8 text."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, payload: Any, indent: int | None = 1) -> Path:
    """:func:`write_bytes_atomic` for a JSON document."""
    return write_text_atomic(path, json.dumps(payload, indent=indent))


def cached_array(path: Path | None, compute: Callable[[], np.ndarray],
                 usable: Callable[[np.ndarray], bool]) -> np.ndarray:
    """The array saved at ``path`` when it loads and is ``usable``; otherwise ``compute()``, saved there
    (atomically, parent folders made) unless ``path`` is None. A damaged entry is computed again."""
    if path is not None and path.is_file():
        try:
            cached = np.load(path, allow_pickle=False)
            if usable(cached):
                return cached
        except (OSError, ValueError):
            pass
    array = compute()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        write_bytes_atomic(path, buffer.getvalue())
    return array


def save_config(config: Config, path: str | Path) -> Path:
    """Write the config as YAML or JSON, chosen by the file extension."""
    return write_text_atomic(path, config_text(config, Path(path).suffix))


def _nearest_existing(folder: Path) -> Path:
    """``folder`` or its nearest ancestor that exists: where it would be created."""
    return next((p for p in [folder, *folder.parents] if p.exists()), Path("."))


def check_writable(folder: str | Path, option: str) -> None:
    """Refuse, before any long work, a folder the run could not write into (``option`` names the fix)."""
    folder = Path(folder)
    existing = _nearest_existing(folder)
    try:
        if not existing.is_dir():
            raise NotADirectoryError(f"{existing} is not a folder")
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise OSError(f"{folder}: cannot write the run here ({exc.strerror or exc}); choose another folder with "
                      f"{option}") from exc


def check_free_space(folder: str | Path, needed_bytes: int, what: str, option: str) -> None:
    """Refuse, before any long work, a folder whose disk cannot hold ``what`` (about ``needed_bytes``)."""
    folder = Path(folder)
    free = shutil.disk_usage(_nearest_existing(folder)).free
    if free < needed_bytes:
        raise OSError(f"{folder}: {free / 1e6:,.0f} MB free, and {what} needs about {needed_bytes / 1e6:,.0f} MB; "
                      f"free some space or choose another folder with {option}")


# --------------------------------------------------------------------------- normalisation and model metadata

@dataclass
class Normalization:
    """Per-coefficient mean and standard deviation, measured on training clips."""

    mean: np.ndarray
    std: np.ndarray

    def apply(self, feats: Any) -> Any:
        """Normalise ``[..., coefficients, frames]`` features (numpy arrays or tensors)."""
        return (feats - self.mean[:, None]) / self.std[:, None]

    def to_dict(self) -> dict[str, list[float]]:
        """The statistics as JSON-ready lists (the inverse of :meth:`from_dict`)."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, list[float]]) -> "Normalization":
        """Refuses (ValueError) a mean or std that is not a finite float32, or a std that is not positive."""
        mean, std = np.asarray(d["mean"], np.float64), np.asarray(d["std"], np.float64)
        limit = np.finfo(np.float32).max
        if not (np.all(np.abs(mean) <= limit) and np.all(np.abs(std) <= limit) and np.all(std > 0)):
            raise ValueError("normalization mean and std must be finite float32 numbers, std above 0")
        return cls(mean.astype(np.float32), std.astype(np.float32))

    @classmethod
    def identity(cls, coefficients: int) -> "Normalization":
        """No normalisation: mean 0 and std 1 for each of ``coefficients``."""
        return cls(np.zeros(coefficients, np.float32), np.ones(coefficients, np.float32))


@dataclass
class ModelMeta:
    """What is needed to feed a model: its front end, normalisation and labels."""

    config: Config
    normalization: Normalization
    class_names: list[str]
    trained_on: list[str] = field(default_factory=list)  # clips used for training or calibration

    def to_dict(self) -> dict[str, Any]:
        """The metadata as a JSON-ready dict (what :meth:`save` writes)."""
        return {"config": self.config.to_dict(), "normalization": self.normalization.to_dict(),
                "class_names": self.class_names, "trained_on": self.trained_on}

    def save(self, directory: str | Path) -> Path:
        """Write ``model_meta.json`` into ``directory``; returns its path."""
        return write_json_atomic(Path(directory) / META_FILE, self.to_dict(), indent=None)

    @classmethod
    def for_model(cls, model_path: str | Path) -> "ModelMeta":
        """Read the ``model_meta.json`` that sits beside ``model_path``."""
        path = Path(model_path).parent / META_FILE
        if not path.is_file():
            raise ModelError(f"{model_path}: no {META_FILE} beside the model (it records the front-end "
                             "settings and labels; models written by esc-tf train/deploy have one)")
        try:
            d = json.loads(path.read_text())
            return cls(config_from_dict(d["config"], written_by_esc_tf=True),
                       Normalization.from_dict(d["normalization"]), list(d["class_names"]),
                       list(d.get("trained_on", [])))
        except (ValueError, KeyError, TypeError) as exc:
            problem = f"missing entry {exc}" if isinstance(exc, KeyError) else str(exc)
            raise ModelError(f"{path}: not a valid {META_FILE} ({problem}); export the model again "
                             "with esc-tf deploy") from exc


# --------------------------------------------------------------------------- fold results

@dataclass
class FoldResult:
    """What one fold's model scored on its own, never-seen test clips."""

    name: str
    accuracy: float
    y_true: list[int]
    y_pred: list[int]
    test_files: list[str]
    epochs_trained: int
    wall_seconds: float
    history: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The result as a JSON-ready dict (what ``result.json`` holds)."""
        return self.__dict__.copy()


def read_report(run_dir: str | Path) -> dict[str, Any]:
    """The ``report.json`` of a run folder (or of a saved report folder under ``reports/``)."""
    path = Path(run_dir) / REPORT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no {REPORT_FILE} (the run has not finished a fold, or this is "
                                "not a run folder written by esc-tf train)")
    return json.loads(path.read_text())


def load_fold_result(fold_dir: Path) -> FoldResult | None:
    """The fold's :class:`FoldResult`, or None while the fold has not finished."""
    path = Path(fold_dir) / RESULT_FILE
    if not path.is_file():
        return None
    return FoldResult(**json.loads(path.read_text()))


# --------------------------------------------------------------------------- provenance

PACKAGES = ("tensorflow", "tf-keras", "tensorflow-io", "tensorflow-model-optimization", "numpy",
            "librosa", "pandas", "scikit-learn", "matplotlib", "tflite-micro", "cmsisdsp")


def code_version() -> str:
    """The esc-tf commit this code is at (``+changes`` when the checkout has uncommitted edits)."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return commit + ("+changes" if dirty else "")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape the numbers, and the esc-tf commit."""
    versions = {"esc-tf (git)": code_version(), "python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def invocation(argv: list[str] | None = None) -> str:
    """This process's command line as a user would type it: ``esc-tf train ...`` or
    ``python -m esc_tf.train ...``."""
    argv = list(sys.argv if argv is None else argv)
    script = Path(argv[0])
    if script.name == "esc-tf":
        return shlex.join(["esc-tf", *argv[1:]])
    if script.suffix == ".py" and "esc_tf" in script.parts:
        module = ".".join(script.parts[script.parts.index("esc_tf"):]).removesuffix(".py")
        return shlex.join(["python", "-m", module.removesuffix(".__main__"), *argv[1:]])
    return shlex.join(["python", *argv])


def record_command(run_dir: Path) -> list[str]:
    """Append this invocation to ``run_dir/commands.txt``; return every command recorded."""
    path = Path(run_dir) / COMMANDS_FILE
    commands = path.read_text().splitlines() if path.is_file() else []
    if not commands or commands[-1] != invocation():
        commands.append(invocation())
        write_text_atomic(path, "\n".join(commands) + "\n")
    return commands


def relative_path(path: str | Path, root: str | Path | None = None) -> str:
    """``path`` relative to ``root`` (default: the working folder) when it lies inside it, else as given:
    artefacts that travel name no machine's absolute folders."""
    p, base = Path(path), Path(root or Path.cwd())
    try:
        return Path(os.path.relpath(p.resolve(), base.resolve())).as_posix() if p.is_absolute() and \
            p.resolve().is_relative_to(base.resolve()) else p.as_posix()
    except ValueError:
        return p.as_posix()

