/* See board_clock.h. */
#include "board_clock.h"

#if defined(BOARD_CLOCK_SYSTICK)
/* SysTick registers of every Armv7-M core (ARMv7-M ARM, B3.3). */
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SYST_MASK 0x00FFFFFFu

void board_clock_init(void) {
  if (SYST_CSR & 1u) return;
  SYST_RVR = SYST_MASK;
  SYST_CVR = 0u;
  SYST_CSR = 0x5u; /* enable, processor clock, no interrupt */
}

/* SysTick counts down; flip it so that the counter counts up. */
uint32_t board_clock_now(void) { return SYST_MASK - (SYST_CVR & SYST_MASK); }

uint32_t board_clock_elapsed(uint32_t since) { return (board_clock_now() - since) & SYST_MASK; }

const char *board_clock_unit(void) { return "systick"; }
#else
#include <time.h>

void board_clock_init(void) {}

uint32_t board_clock_now(void) { return (uint32_t)((double)clock() * (1e6 / CLOCKS_PER_SEC)); }

uint32_t board_clock_elapsed(uint32_t since) { return board_clock_now() - since; }

const char *board_clock_unit(void) { return "clock_us"; }
#endif

#if defined(__arm__) && defined(__thumb2__)
uint32_t board_clock_calibrate(uint32_t instructions) {
  uint32_t count = instructions / 2u; /* two instructions per iteration: subs, bne */
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
