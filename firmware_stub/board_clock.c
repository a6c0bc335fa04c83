/* See board_clock.h. */
#include "board_clock.h"

#if defined(BOARD_CLOCK_SYSTICK)
/* SysTick registers of every Armv7-M core (ARMv7-M ARM, B3.3). */
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SYST_MASK 0x00FFFFFFu

/* A SysTick already running (an RTOS tick) is left as it is: its reload value may be shorter than the
 * full 24 bits, so the counter wraps at reload + 1, and intervals are valid within one such period. */
void board_clock_init(void) {
  if (SYST_CSR & 1u) return;
  SYST_RVR = SYST_MASK;
  SYST_CVR = 0u;
  SYST_CSR = 0x5u; /* enable, processor clock, no interrupt */
}

static uint32_t reload(void) { return SYST_RVR & SYST_MASK; }

/* SysTick counts down from its reload value; flip it so that the counter counts up. */
uint32_t board_clock_now(void) { return reload() - (SYST_CVR & SYST_MASK); }

uint32_t board_clock_elapsed(uint32_t since) {
  const uint32_t now = board_clock_now();
  return now >= since ? now - since : now + reload() + 1u - since;
}

const char *board_clock_unit(void) { return "systick"; }
#else
#include <time.h>

void board_clock_init(void) {}

/* Through 64 bits: converting a double beyond 2^32 straight to uint32_t is undefined behaviour. */
uint32_t board_clock_now(void) { return (uint32_t)(uint64_t)((double)clock() * (1e6 / CLOCKS_PER_SEC)); }

uint32_t board_clock_elapsed(uint32_t since) { return board_clock_now() - since; }

const char *board_clock_unit(void) { return "clock_us"; }
#endif

#if defined(__arm__) && defined(__thumb2__)
uint32_t board_clock_calibrate(uint32_t instructions) {
  uint32_t count = instructions / 2u; /* two instructions per iteration: subs, bne */
  if (count == 0u) return 0u;       /* the loop would first wrap to 2^32 - 1 */
  const uint32_t start = board_clock_now();
  __asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(count) : : "cc");
  return board_clock_elapsed(start);
}
#else
uint32_t board_clock_calibrate(uint32_t instructions) {
  (void)instructions;
  return 0u;
}
#endif
