"""The firmware on the real TFLM: tree preparation (always) and, when the pinned TFLM sources are
given in ``$ESC_TF_TFLM_SOURCES``, the host build and the Cortex-M4 image under QEMU."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from firmware_stub.tools import tflm_device, tflm_tree

REPO = Path(__file__).resolve().parents[1]
SOURCES = os.environ.get(tflm_tree.SOURCES_ENV)


def git_checkout(path: Path, files: dict[str, str]) -> str:
    """A one-commit git repository at ``path`` holding ``files``; returns its commit."""
    path.mkdir(parents=True)
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "c"]):
        subprocess.run(["git", *args], cwd=path, check=True, env=env, capture_output=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, check=True, capture_output=True,
                          text=True).stdout.strip()


PATCH = """\
--- a/lib.h
+++ b/lib.h
@@ -1 +1 @@
-int version = 1;
+int version = 2;  /* patched */
"""


@pytest.fixture
def fake_sources(tmp_path) -> tuple[Path, list[tflm_tree.Source]]:
    root = tmp_path / "sources"
    tflm = git_checkout(root / "tflite-micro", {"README.md": "tflm\n", "patches/lib.patch": PATCH})
    lib = git_checkout(root / "lib", {"lib.h": "int version = 1;\n"})
    dfp = git_checkout(root / "dfp", {"Device/ARMCM4/Include/ARMCM4.h": "/* device */\n"})
    return root, [tflm_tree.Source("tflite-micro", "https://example.invalid/tflm", tflm),
                  tflm_tree.Source("lib", "https://example.invalid/lib", lib, into="lib", patch="patches/lib.patch"),
                  tflm_tree.Source("dfp", "https://example.invalid/dfp", dfp, into="cmsis/Cortex_DFP")]


def test_checkout_holds_every_third_party_tree_where_tflm_expects_it_patched(fake_sources, tmp_path):
    root, sources = fake_sources
    checkout = tflm_tree.prepare_checkout(sources, root, tmp_path / "work")
    downloads = checkout / tflm_tree.DOWNLOADS
    assert (checkout / "README.md").read_text() == "tflm\n"
    assert "patched" in (downloads / "lib" / "lib.h").read_text()
    assert (downloads / "cmsis" / "Cortex_DFP" / "Device" / "ARMCM4" / "Include" / "ARMCM4.h").is_file()
    assert (downloads / "pigweed").is_dir()  # TFLM's Makefile would otherwise clone it
    assert not (checkout / ".git").exists() and not (downloads / "lib" / ".git").exists()
    assert "version = 1" in (root / "lib" / "lib.h").read_text()  # the user's checkout is left alone


def test_without_a_sources_folder_each_source_is_cloned_at_its_commit(fake_sources, tmp_path):
    root, sources = fake_sources
    remote = [tflm_tree.Source(s.name, (root / s.name).as_uri(), s.commit, s.into, s.patch) for s in sources]
    checkout = tflm_tree.prepare_checkout(remote, None, tmp_path / "work")
    assert "patched" in (checkout / tflm_tree.DOWNLOADS / "lib" / "lib.h").read_text()
    assert (tmp_path / "work" / "sources" / "lib" / "lib.h").is_file()  # the clone, kept for the next run


def test_a_source_at_another_commit_is_refused_naming_both(fake_sources, tmp_path):
    root, sources = fake_sources
    wrong = [sources[0], tflm_tree.Source("lib", "https://example.invalid/lib", "0" * 40, into="lib")]
    with pytest.raises(tflm_tree.TreeError, match=r"lib: checked out at [0-9a-f]{12}.*000000000000"):
        tflm_tree.prepare_checkout(wrong, root, tmp_path / "work")


def test_a_missing_source_is_refused_saying_what_to_put_there(fake_sources, tmp_path):
    root, sources = fake_sources
    shutil.rmtree(root / "lib")
    with pytest.raises(tflm_tree.TreeError, match=r"lib: not found; put a checkout of https://example.invalid/lib"):
        tflm_tree.prepare_checkout(sources, root, tmp_path / "work")
    assert tflm_tree.main([str(tmp_path / "out"), "--sources", str(tmp_path / "nowhere")]) == 1


def test_the_pinned_sources_are_full_commits_with_tflm_first():
    sources = tflm_tree.pinned_sources()
    assert sources[0].name == "tflite-micro" and sources[0].into is None
    assert all(re.fullmatch("[0-9a-f]{40}", s.commit) for s in sources)
    assert {s.into for s in sources[1:]} >= {"flatbuffers", "gemmlowp", "ruy", "kissfft", "cmsis", "cmsis_nn"}


def test_start_up_and_check_lines_are_parsed():
    text = ("front end 429d, model 117320 bytes, arena 65536 bytes\narena used 59264 bytes\n"
            "self-test PASSED: setup 1, input 0/9920 differ (max 0), class 14 expected 14, score diff 0\n"
            "check clips 2 views 4 classes 50\n")
    start_up = tflm_device.StartUp.parse(text)
    assert start_up.arena_used == 59264 and start_up.self_test_passed and len(start_up.lines) == 3
    assert not tflm_device.StartUp.parse(text.replace("PASSED", "FAILED")).self_test_passed
    assert tflm_device._check_values(text)["clips"] == ["2", "views", "4", "classes", "50"]


def test_qemu_command_passes_the_program_its_arguments_by_semihosting():
    cmd = tflm_device.command("cortex-m4", Path("b/esc_device_check"), ("clips.raw", "scores.bin"))
    assert cmd[0] == "qemu-system-arm" and "mps2-an386" in cmd and "-icount" in cmd
    assert "arg=esc_device_check,arg=clips.raw,arg=scores.bin" in cmd[cmd.index("-semihosting-config") + 1]
    assert tflm_device.command("host", Path("b/x"), ("a",)) == ["b/x", "a"]


def test_flash_by_component_adds_up_to_the_image(tmp_path):
    """Link a small Cortex-M image with a map file: the components sum to the flash `size` reports, and its
    static RAM holds its globals."""
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed")
    (tmp_path / "model_data.cc").write_text("extern const unsigned char g_model_data[3000];\n"
                                            "const unsigned char g_model_data[3000] = {1};\n")
    (tmp_path / "main.c").write_text("#include <stdio.h>\nextern const unsigned char g_model_data[];\n"
                                     "int counter = 7;\nchar scratch[5000];\nchar table[3000] = {1};\n"
                                     "int main(void) { scratch[counter] = 1; printf(\"%d\", g_model_data[counter] + "
                                     "scratch[counter] + table[counter]); return 0; }\n")
    flags = ["-mcpu=cortex-m4", "-mthumb", "-O2"]
    for name in ("model_data.cc", "main.c"):
        subprocess.run(["arm-none-eabi-gcc", *flags, "-c", name, "-o", f"{name}.obj"], cwd=tmp_path, check=True)
    subprocess.run(["arm-none-eabi-gcc", *flags, "--specs=rdimon.specs", "model_data.cc.obj", "main.c.obj",
                    "-Wl,-Map=image.map", "-o", "image"], cwd=tmp_path, check=True, capture_output=True)
    parts = tflm_device.flash_by_component(tmp_path / "image.map")
    sizes = tflm_device.elf_sizes(tmp_path / "image")
    assert parts["model"] == 3000
    assert parts["C/C++ runtime (newlib, libgcc, libstdc++)"] > 1000  # printf
    assert abs(sum(parts.values()) - (sizes["text"] + sizes["data"])) <= 0.01 * sizes["text"]
    assert 5000 + 3000 + 4 <= tflm_device.static_ram(tmp_path / "image") <= sizes["data"] + sizes["bss"]


# --------------------------------------------------------------------------- with the real TFLM

needs_sources = pytest.mark.skipif(
    not SOURCES, reason=f"${tflm_tree.SOURCES_ENV} is not set: the full TFLM C++ tree is on no package registry; "
                        "set it to a folder holding the checkouts listed in firmware_stub/tflm/sources.json")


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> dict[str, Path]:
    return tflm_tree.make_trees(tmp_path_factory.mktemp("tflm"), list(tflm_device.TARGETS), Path(SOURCES))


@pytest.mark.ci_may_skip
@needs_sources
@pytest.mark.parametrize("target", tflm_device.TARGETS)
def test_published_firmware_passes_its_self_test_and_scores_like_python(target, trees, tmp_path):
    """The firmware built from the published export: its self-test passes, and on clips of the
    golden recording it gives the int8 scores Python's TFLM gives for the same windows."""
    missing = tflm_device.missing_tools(target)
    if missing:
        pytest.fail(f"{target} needs {', '.join(missing)}")
    from esc_tf.artifacts import ModelMeta
    from firmware_stub.tools import reference

    export = REPO / "tflite"
    programs = tflm_device.build(trees[target], target, export, tmp_path / "build")
    start_up = tflm_device.firmware_start_up(target, programs["esc_firmware"])
    assert start_up.self_test_passed, start_up.lines
    meta = ModelMeta.for_model(export / "model_int8.tflite")
    model_bytes = (export / "model_int8.tflite").read_bytes()
    rng = np.random.default_rng(0)
    pcm = (rng.standard_normal((2, meta.config.audio.clip_samples)) * 3000).astype(np.int16)
    run = tflm_device.run_check(target, programs["esc_device_check"], pcm, tmp_path / "run")
    python = reference.tflm_scores(model_bytes, reference.python_inputs(
        reference.from_int16(pcm), meta, model_bytes, every_view=True)).reshape(run.scores.shape)
    assert np.abs(run.scores.astype(int) - python).max() <= 1
    assert run.invoke_ticks.count == run.scores.shape[0] * run.scores.shape[1]
    if target == "cortex-m4":
        assert 30 <= run.instructions_per_tick <= 50  # 25 MHz SysTick, 1 instruction per ns
        assert 1000 < run.stack_peak_bytes < 16384


def test_a_silent_firmware_is_stopped_after_the_timeout(tmp_path):
    import time

    program = tmp_path / "silent"
    program.write_text("#!/bin/sh\necho 'front end x, model 1 bytes, arena 2 bytes'\nsleep 60\n")
    program.chmod(0o755)
    start = time.monotonic()
    start_up = tflm_device.firmware_start_up("host", program, timeout=1)
    assert time.monotonic() - start < 30
    assert not start_up.self_test_passed and start_up.lines == ["front end x, model 1 bytes, arena 2 bytes"]
