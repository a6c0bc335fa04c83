"""Build the firmware against a real TFLM tree and run it, on the host and on a Cortex-M4 under QEMU.

Two targets, each from its own tree (``firmware_stub.tools.tflm_tree``):

- ``host``: the x86-64 (or other) host with TFLM's reference kernels, run natively;
- ``cortex-m4``: an image for QEMU's ``mps2-an386`` machine (a Cortex-M4 with FPU), CMSIS-NN kernels,
  Cortex_DFP start-up code, newlib with semihosting, run by ``qemu-system-arm`` with ``-icount``
  so that the core's SysTick advances with the instructions executed.

Each build has two programs: ``esc_firmware`` (the application as a board runs it: start-up
lines, golden-clip self-test, then the microphone) and ``esc_device_check`` (the same start-up,
then clips from a file through the firmware's path, with the int8 scores of every view written
back and the cost counted; ``device_check_main.cc``).
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FIRMWARE = Path(__file__).resolve().parents[1]
TOOLCHAIN_FILE = FIRMWARE / "cmake" / "arm-none-eabi-cortex-m4.cmake"
TARGETS = ("host", "cortex-m4")
PROGRAMS = ("esc_firmware", "esc_device_check")
BUILD_TYPE = "Release"  # -O3: the flags a user's release build gets; the C parts are -Werror clean under it
QEMU_MACHINE = ("-machine", "mps2-an386", "-cpu", "cortex-m4", "-nographic", "-monitor", "none", "-serial", "null")
# One instruction per nanosecond of virtual time, so the SysTick (25 MHz CPU clock on mps2-an386) counts
# instructions; the calibration loop of esc_device_check measures the ratio rather than assuming it.
QEMU_ICOUNT = ("-icount", "shift=0")


class DeviceError(RuntimeError):
    """A build or run failed; the message holds the tool's own last lines."""


def missing_tools(target: str) -> list[str]:
    """The programs ``target`` needs that are not on PATH (Debian package names in brackets)."""
    needed = {"cmake": "cmake", "c++": "g++", "make": "make"}
    if target == "cortex-m4":
        needed.update({"arm-none-eabi-g++": "gcc-arm-none-eabi, libstdc++-arm-none-eabi-newlib",
                       "qemu-system-arm": "qemu-system-arm"})
    return [f"{tool} ({package})" for tool, package in needed.items() if shutil.which(tool) is None]


def _run(command: list[str], cwd: Path | None = None, timeout: float | None = None) -> str:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr)[-3000:]
        raise DeviceError(f"{' '.join(command[:3])} ... failed ({result.returncode}):\n{tail}")
    return result.stdout


def build(tree: Path, target: str, export_dir: Path, build_dir: Path, jobs: int = 2,
          compact_ring: bool = False) -> dict[str, Path]:
    """Configure and build both programs for ``target`` against the TFLM ``tree``; returns {program: path}.
    ``compact_ring``: the level ring of 16-bit mels (CMake option FEATURE_STREAM_COMPACT_RING)."""
    options = [f"-DTFLM_ROOT={Path(tree).resolve()}", f"-DGENERATED_DIR={Path(export_dir).resolve()}",
               f"-DCMAKE_BUILD_TYPE={BUILD_TYPE}", f"-DFEATURE_STREAM_COMPACT_RING={'ON' if compact_ring else 'OFF'}"]
    if target == "cortex-m4":
        options += [f"-DCMAKE_TOOLCHAIN_FILE={TOOLCHAIN_FILE}", "-DFIRMWARE_BOARD=qemu_mps2_an386"]
    _run(["cmake", "-S", str(FIRMWARE), "-B", str(build_dir), *options])
    _run(["cmake", "--build", str(build_dir), "-j", str(jobs), "--target", *PROGRAMS])
    return {program: Path(build_dir) / program for program in PROGRAMS}


def command(target: str, program: Path, args: tuple[str, ...] = (), icount: bool = True) -> list[str]:
    """The command line that runs ``program`` (with ``args``) on ``target``."""
    if target == "host":
        return [str(program), *args]
    semihosting = ",".join(["enable=on", "target=native", f"arg={program.name}", *(f"arg={a}" for a in args)])
    return ["qemu-system-arm", *QEMU_MACHINE, *(QEMU_ICOUNT if icount else ()),
            "-semihosting-config", semihosting, "-kernel", str(program)]


@dataclass
class StartUp:
    """What the firmware prints before it listens."""

    lines: list[str]
    arena_used: int | None = None
    self_test: str = ""

    @property
    def self_test_passed(self) -> bool:
        return self.self_test.startswith("self-test PASSED")

    @classmethod
    def parse(cls, text: str) -> "StartUp":
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        arena = next((int(m.group(1)) for line in lines if (m := re.match(r"arena used (\d+) bytes", line))), None)
        test = next((line for line in lines if line.startswith("self-test")), "")
        return cls([line for line in lines if not line.startswith("check ")], arena, test)


def firmware_start_up(target: str, program: Path, timeout: float = 300) -> StartUp:
    """Run the application until it has printed its self-test line, then stop it (it listens forever).
    A program silent for ``timeout`` seconds is stopped too: the self-test line is then missing."""
    process = subprocess.Popen(command(target, program, icount=False), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)

    def stop() -> None:  # the whole group: a child holding stdout open would keep the read blocked
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    watchdog = threading.Timer(timeout, stop)  # reading blocks: a hung program is stopped from here
    watchdog.start()
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if line.startswith("self-test"):
                break
    finally:
        watchdog.cancel()
        stop()
        process.wait()
    return StartUp.parse("".join(lines))


@dataclass
class TickStats:
    total: int
    count: int
    max: int

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else float("nan")


@dataclass
class CheckRun:
    """One run of ``esc_device_check``: its start-up, the int8 scores ``[clips, views, classes]`` and the cost."""

    target: str
    start_up: StartUp
    scores: np.ndarray
    clock: str
    hop_ticks: TickStats
    window_ticks: TickStats  # feature_stream_window(): the window finished at its level, once per inference
    invoke_ticks: TickStats
    calibration_ticks: int
    calibration_instructions: int
    stack_peak_bytes: int | None
    wall_seconds: float
    inputs: np.ndarray | None = None  # int8 input tensors [clips, views, elements], when asked for
    values: dict = field(default_factory=dict)

    @property
    def instructions_per_tick(self) -> float | None:
        """Measured by the calibration loop (Cortex-M4 under QEMU only)."""
        return self.calibration_instructions / self.calibration_ticks if self.calibration_ticks else None


def _check_values(text: str) -> dict[str, list[str]]:
    return {parts[1]: parts[2:] for line in text.splitlines() if (parts := line.split())[:1] == ["check"]}


def run_check(target: str, program: Path, pcm: np.ndarray, work_dir: Path, timeout: float = 3600,
              with_inputs: bool = False) -> CheckRun:
    """Run ``esc_device_check`` on int16 clips ``pcm`` ``[clips, kClipSamples]``; returns what it printed and
    wrote (with ``with_inputs``, also the input tensor of every view)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / "clips.raw").write_bytes(np.asarray(pcm, "<i2").tobytes())
    scores_file = work_dir / "scores.bin"
    scores_file.unlink(missing_ok=True)
    files = ("clips.raw", "scores.bin", *(("inputs.bin",) if with_inputs else ()))
    start = time.monotonic()
    result = subprocess.run(command(target, program.resolve(), files), cwd=work_dir,
                            capture_output=True, text=True, timeout=timeout)
    wall = time.monotonic() - start
    values = _check_values(result.stdout)
    if result.returncode != 0 or "clips" not in values:
        raise DeviceError(f"esc_device_check on {target} failed ({result.returncode}):\n"
                          f"{(result.stdout + result.stderr)[-3000:]}")
    clips, views, classes = (int(values["clips"][i]) for i in (0, 2, 4))
    scores = np.frombuffer(scores_file.read_bytes(), np.int8).reshape(clips, views, classes)

    def ticks(name: str) -> TickStats:
        v = values[name]
        return TickStats(int(v[1]), int(v[3]), int(v[5]))

    stack = values.get("stack_peak_bytes")
    inputs = np.frombuffer((work_dir / "inputs.bin").read_bytes(), np.int8).reshape(clips, views, -1) \
        if with_inputs else None
    return CheckRun(target, StartUp.parse(result.stdout), scores, values["clock"][0], ticks("hop_ticks"),
                    ticks("window_ticks"), ticks("invoke_ticks"), int(values["calibration_ticks"][0]), int(values["calibration_ticks"][2]),
                    int(stack[0]) if stack else None, wall, inputs, values)


# Flash by component, from the GNU ld map file of the Cortex-M4 image.
_COMPONENTS = (
    ("model", re.compile(r"model_data\.cc\.obj")),
    ("golden clip (self-test data)", re.compile(r"golden_clip\.c\.obj")),
    ("CMSIS-NN", re.compile(r"libcmsis_nn\.a")),
    ("TFLM", re.compile(r"libtflm\.a")),
    ("firmware C/C++", re.compile(r"libesc_device\.a|esc_[a-z_]+\.dir/")),
    ("C/C++ runtime (newlib, libgcc, libstdc++)", re.compile(r"arm-none-eabi|libc_|libm|libgcc|libstdc|crt|rdimon")),
)
_FLASH_SECTIONS = re.compile(r"^\.(text|rodata|ARM\.exidx|ARM\.extab|data|init_array|fini_array|preinit_array"
                             r"|copy\.table|zero\.table)\b")
_INPUT = re.compile(r"^\s+(?:(\S+)\s+)?0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$")


def flash_by_component(map_file: Path) -> dict[str, int]:
    """Bytes of flash (code, read-only data, initialised data) per component of the linked image."""
    sizes: dict[str, int] = {}
    in_flash, pending = False, None
    text = Path(map_file).read_text(errors="replace")
    body = text.split("Linker script and memory map", 1)[-1]
    for line in body.splitlines():
        if line and not line[0].isspace():
            in_flash = bool(_FLASH_SECTIONS.match(line))
            continue
        if not in_flash:
            continue
        stripped = line.strip()
        if stripped.startswith(".") and len(stripped.split()) == 1:
            pending = stripped  # a long input-section name: its address, size and file follow on the next line
            continue
        match = _INPUT.match(line)
        if not match or (match.group(1) is None and pending is None):
            pending = None
            continue
        pending = None
        size, source = int(match.group(3), 16), match.group(4)
        if size == 0 or source.startswith("*"):
            continue
        name = next((label for label, pattern in _COMPONENTS if pattern.search(source)), "start-up and board")
        sizes[name] = sizes.get(name, 0) + size
    return sizes


def elf_sizes(elf: Path) -> dict[str, int]:
    """text, data and bss of an Arm image (``arm-none-eabi-size``)."""
    fields = _run(["arm-none-eabi-size", str(elf)]).splitlines()[1].split()
    return {"text": int(fields[0]), "data": int(fields[1]), "bss": int(fields[2])}


def static_ram(elf: Path) -> int:
    """.data + .bss of an Arm image: its RAM without the heap and stack sections the linker script reserves."""
    sections = dict(re.findall(r"^(\.\w+)\s+(\d+)\s+\d+\s*$", _run(["arm-none-eabi-size", "-A", str(elf)]), re.M))
    if ".bss" not in sections:
        raise DeviceError(f"{elf}: no .bss section in `arm-none-eabi-size -A`; is it an Arm image?")
    return int(sections.get(".data", 0)) + int(sections[".bss"])


def run_recording(target: str, program: Path, pcm: np.ndarray, work_dir: Path,
                  timeout: float = 3600) -> tuple[StartUp, list[tuple[int, int, float, bool]]]:
    """``esc_device_check -s``: the int16 recording ``pcm`` as the microphone of the firmware's own loop();
    returns its start-up and one ``(frames heard, top class, top score, detected)`` per inference."""
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / "recording.raw").write_bytes(np.asarray(pcm, "<i2").tobytes())
    out = work_dir / "decisions.txt"
    out.unlink(missing_ok=True)
    result = subprocess.run(command(target, program.resolve(), ("-s", "recording.raw", "decisions.txt")),
                            cwd=work_dir, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0 or not out.is_file():
        raise DeviceError(f"esc_device_check -s on {target} failed ({result.returncode}):\n"
                          f"{(result.stdout + result.stderr)[-3000:]}")
    decisions = []
    for line in out.read_text().splitlines():
        frames, top, score, detected = line.split()
        decisions.append((int(frames), int(top), float(score), detected == "1"))
    return StartUp.parse(result.stdout), decisions


def firmware_schedule(num_frames: int) -> tuple[int, int, float]:
    """The firmware's default schedule, read from ``inference_schedule.h``: frames between inferences,
    inferences averaged, score threshold."""
    text = (FIRMWARE / "inference_schedule.h").read_text()
    stride = re.search(r"#define FIRMWARE_INFERENCE_STRIDE_FRAMES (kNumFrames|\(kNumFrames / (\d+)\))\n", text)
    divisor = int(stride.group(2) or 1)
    average = int(re.search(r"#define FIRMWARE_AVERAGE_WINDOW (\d+)", text).group(1))
    threshold = float(re.search(r"#define FIRMWARE_SCORE_THRESHOLD ([0-9.]+)f", text).group(1))
    return max(1, num_frames // divisor), average, threshold
