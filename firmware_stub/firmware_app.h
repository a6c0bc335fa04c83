/* The firmware application: setup() once, then loop() forever (Arduino's entry points).
 * main.cc defines them, and main() unless ARDUINO or FIRMWARE_NO_MAIN is defined. */
#ifndef ESC_TF_FIRMWARE_APP_H_
#define ESC_TF_FIRMWARE_APP_H_

#include <stdint.h>

#include "postprocess.h"

/* Model, golden-clip self-test (printed), then the microphone.  Returns whether the self-test passed. */
bool setup_and_test();
/* Whether setup_and_test() got the model, front end and post-processing ready (loop() does nothing until
 * then), whatever the self-test found. */
bool firmware_ready();
void setup();
void loop();

/* Called by loop() after every inference with its decision, detected or not, and the frames
 * heard so far.  A weak no-op in main.cc; device_check_main.cc records the decisions. */
void firmware_decision(uint32_t frames, const postprocess_result_t& result);

#endif  // ESC_TF_FIRMWARE_APP_H_
