// Board file for QEMU's mps2-an386 (a Cortex-M4 with FPU): TFLM's log goes to the host's
// stdout over semihosting (newlib's rdimon), where QEMU prints it.  The startup code, system
// file and linker script are Cortex_DFP's ARMCM4 ones (see CMakeLists.txt); the microphone
// stays the silent stub of audio_provider.c.
#include <stdio.h>

#include "tensorflow/lite/micro/cortex_m_generic/debug_log_callback.h"

namespace {

void WriteLog(const char* text) { fputs(text, stdout); }

// Runs from newlib's start-up (__libc_init_array), before main().
__attribute__((constructor)) void RegisterLog() { RegisterDebugLogCallback(WriteLog); }

}  // namespace
