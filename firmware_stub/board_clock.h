/* A free-running tick counter for measuring the firmware's cost on a board.
 *
 * Cortex-M (BOARD_CLOCK_SYSTICK): the core's SysTick, 24 bits, counting CPU clock cycles on a
 * real core; under QEMU with -icount it advances with the instructions executed.  Elsewhere
 * (host builds): clock(), in microseconds of CPU time.  C99, no heap.
 */
#ifndef ESC_TF_BOARD_CLOCK_H_
#define ESC_TF_BOARD_CLOCK_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Start the counter (idempotent). */
void board_clock_init(void);

/* The counter now; it counts up and wraps at its width. */
uint32_t board_clock_now(void);

/* Ticks from `since` to now, modulo the counter's period: valid for intervals shorter than one wrap (on a
 * board whose RTOS already runs SysTick, one period of its reload value). */
uint32_t board_clock_elapsed(uint32_t since);

/* Ticks taken by a loop of exactly `instructions` instructions (Arm only; 0 elsewhere and below 2).
 * Under QEMU -icount this measures the instructions per tick instead of assuming it. */
uint32_t board_clock_calibrate(uint32_t instructions);

/* What a tick is: "systick" or "clock_us". */
const char *board_clock_unit(void);

#ifdef __cplusplus
}
#endif

#endif /* ESC_TF_BOARD_CLOCK_H_ */
