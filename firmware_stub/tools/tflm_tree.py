"""Make TFLM source trees for the firmware from a tflite-micro checkout and its third-party trees.

The commits are pinned in ``firmware_stub/tflm/sources.json``. With ``--sources DIR`` (or the
environment variable ``ESC_TF_TFLM_SOURCES``) the checkouts are taken from ``DIR/<name>``, so a
machine without internet can build; otherwise each one is cloned at its commit. TFLM's own
``create_tflm_tree.py`` then writes the tree a target needs, with the third-party trees placed
where TFLM's Makefile would have downloaded them (and TFLM's patches applied), so it downloads
nothing:

    python -m firmware_stub.tools.tflm_tree build/tflm --target host --target cortex-m4

writes ``build/tflm/host`` (reference kernels) and ``build/tflm/cortex-m4`` (CMSIS-NN kernels),
each usable as ``-DTFLM_ROOT`` of ``firmware_stub/CMakeLists.txt``. Nothing from these trees is
kept in this repository.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

FIRMWARE = Path(__file__).resolve().parents[1]
SOURCES_FILE = FIRMWARE / "tflm" / "sources.json"
SOURCES_ENV = "ESC_TF_TFLM_SOURCES"
DOWNLOADS = Path("tensorflow/lite/micro/tools/make/downloads")
CREATE_TREE = Path("tensorflow/lite/micro/tools/project_generation/create_tflm_tree.py")
# Folders of the downloads that create_tflm_tree.py leaves out of a Cortex-M tree: the Cortex-M4 device
# files of Cortex_DFP (start-up, system, linker script, ARMCM4.h: a bare-metal image for QEMU's
# mps2-an386 is built from them), and CMSIS 6's m-profile headers, which cmsis_gcc.h includes
# (the generator copies only the top folder's headers).
CORTEX_M_FOLDERS = (
    ("cmsis/Cortex_DFP/Device/ARMCM4", "third_party/cmsis/Cortex_DFP/Device/ARMCM4"),
    ("cmsis/CMSIS/Core/Include", "third_party/cmsis/CMSIS/Core/Include"),
)

# create_tflm_tree.py's Makefile options per target.  The Arm toolchain root is filled in at run time.
TARGETS: dict[str, tuple[str, ...]] = {
    "host": (),
    "cortex-m4": ("TARGET=cortex_m_generic", "TARGET_ARCH=cortex-m4+fp", "OPTIMIZED_KERNEL_DIR=cmsis_nn"),
}


class TreeError(RuntimeError):
    """A source is missing or at the wrong commit, or TFLM's tree generation failed."""


@dataclass(frozen=True)
class Source:
    """One pinned source: where it comes from and where TFLM's Makefile expects it."""

    name: str
    url: str
    commit: str
    into: str | None = None
    patch: str | None = None


def pinned_sources(path: Path = SOURCES_FILE) -> list[Source]:
    """The sources listed in ``sources.json``, tflite-micro first."""
    return [Source(**entry) for entry in json.loads(path.read_text())["sources"]]


def _git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def _checked_out_commit(path: Path) -> str | None:
    """HEAD of ``path`` when it is the top of a git checkout, else None (an extracted archive)."""
    if not (path / ".git").exists():
        return None
    return _git("rev-parse", "HEAD", cwd=path)


def locate(source: Source, sources_dir: Path | None, clone_dir: Path) -> Path:
    """The folder holding ``source`` at its pinned commit: from ``sources_dir`` or cloned into ``clone_dir``."""
    if sources_dir is not None:
        path = sources_dir / source.name
        if not path.is_dir():
            raise TreeError(f"{path}: not found; put a checkout of {source.url} at commit {source.commit[:12]} "
                            f"there, or leave out --sources to clone it")
    else:
        path = clone_dir / source.name
        if not path.is_dir():
            print(f"cloning {source.url} at {source.commit[:12]}", file=sys.stderr)
            path.mkdir(parents=True)
            _git("init", "-q", cwd=path)
            _git("fetch", "-q", "--depth", "1", source.url, source.commit, cwd=path)
            _git("checkout", "-q", "FETCH_HEAD", cwd=path)
    head = _checked_out_commit(path)
    if head is not None and head != source.commit:
        raise TreeError(f"{path}: checked out at {head[:12]}, but this firmware is tested with "
                        f"{source.commit[:12]}; check out that commit")
    return path


def prepare_checkout(sources: list[Source], sources_dir: Path | None, work_dir: Path) -> Path:
    """A copy of tflite-micro whose downloads folder holds every third-party tree, patched as TFLM does."""
    clone_dir = work_dir / "sources"
    tflm_source, *third_party = sources
    checkout = work_dir / "tflite-micro"
    if checkout.exists():
        shutil.rmtree(checkout)
    shutil.copytree(locate(tflm_source, sources_dir, clone_dir), checkout, ignore=shutil.ignore_patterns(".git"))
    downloads = checkout / DOWNLOADS
    downloads.mkdir(parents=True, exist_ok=True)
    # pigweed is only used by TFLM's own tests; its download script skips an existing folder.
    (downloads / "pigweed").mkdir(exist_ok=True)
    for source in third_party:
        target = downloads / source.into
        shutil.copytree(locate(source, sources_dir, clone_dir), target, ignore=shutil.ignore_patterns(".git"),
                        dirs_exist_ok=True)
        if source.patch:
            patch = checkout / source.patch
            subprocess.run(["patch", "-s", "-p1", "-d", str(target), "-i", str(patch)], check=True)
    return checkout


def arm_toolchain_root() -> str:
    """The folder of ``arm-none-eabi-gcc`` with a trailing slash, as TFLM's Makefile wants it."""
    gcc = shutil.which("arm-none-eabi-gcc")
    if gcc is None:
        raise TreeError("arm-none-eabi-gcc not found: install gcc-arm-none-eabi (Debian/Ubuntu package)")
    return str(Path(gcc).parent) + "/"


def create_tree(checkout: Path, target: str, out_dir: Path) -> Path:
    """Run TFLM's create_tflm_tree.py for ``target`` into ``out_dir``; returns it."""
    options = list(TARGETS[target])
    if target != "host":
        options.append(f"TARGET_TOOLCHAIN_ROOT={arm_toolchain_root()}")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    command = [sys.executable, str(CREATE_TREE), f"--makefile_options={' '.join(options)}", str(out_dir.resolve())]
    result = subprocess.run(command, cwd=checkout, capture_output=True, text=True)
    if result.returncode != 0:
        raise TreeError(f"create_tflm_tree.py for {target} failed:\n{result.stderr[-2000:]}")
    if target != "host":
        for source, dest in CORTEX_M_FOLDERS:
            shutil.copytree(checkout / DOWNLOADS / source, out_dir / dest, dirs_exist_ok=True)
    return out_dir


STAMP = ".esc_tf_tree"


def _stamp(target: str) -> str:
    """What a tree was made from: the pinned sources and the target's options."""
    return json.dumps({"sources": json.loads(SOURCES_FILE.read_text())["sources"], "target": TARGETS[target]})


def make_trees(out_dir: Path, targets: list[str], sources_dir: Path | None) -> dict[str, Path]:
    """Make one TFLM tree per target under ``out_dir``; returns {target: tree}. A tree already made there
    from the same pinned sources is kept (its files unchanged, so a build on it stays incremental)."""
    out_dir = out_dir.resolve()
    trees = {target: out_dir / target for target in targets}
    todo = [t for t in targets if not (trees[t] / STAMP).is_file() or (trees[t] / STAMP).read_text() != _stamp(t)]
    if todo:
        checkout = prepare_checkout(pinned_sources(), sources_dir, out_dir)
        for target in todo:
            create_tree(checkout, target, trees[target])
            (trees[target] / STAMP).write_text(_stamp(target))
        shutil.rmtree(checkout)
    return trees


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="folder for the trees (one sub-folder per target)")
    parser.add_argument("--target", action="append", choices=sorted(TARGETS), help="default: both")
    parser.add_argument("--sources", type=Path, default=os.environ.get(SOURCES_ENV) or None,
                        help=f"folder with one checkout per source (default: ${SOURCES_ENV}, else clone)")
    args = parser.parse_args(argv)
    try:
        trees = make_trees(args.out_dir, args.target or sorted(TARGETS), args.sources)
    except (TreeError, subprocess.CalledProcessError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for target, tree in trees.items():
        print(f"{target}: {tree}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
