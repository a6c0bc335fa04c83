/* When the device runs the model and how many inferences it averages (compile-time defaults).
 *
 * By default the device runs the published scoring scheme, the one its accuracy was measured with:
 * one inference per clip length of audio (consecutive windows), each of kTimeRolls invokes on the
 * window rotated by 0 .. kTimeRolls-1 frames (model.time_rolls), each at the mel shifts
 * -kMelShifts .. +kMelShifts (model.mel_shifts), their probabilities averaged, as a clip was scored
 * in training; no averaging across inferences.  A shorter stride decides more often and costs
 * proportionally more (kNumFrames / 5: five times the MACs per second of audio).
 * Each default can be overridden with a compile definition.
 */
#ifndef ESC_TF_INFERENCE_SCHEDULE_H_
#define ESC_TF_INFERENCE_SCHEDULE_H_

#include "model_settings.h"

#ifndef kTimeRolls /* a model_settings.h exported before model.time_rolls: one view per window */
#define kTimeRolls 1
#endif
#ifndef kMelShifts /* a model_settings.h exported before model.mel_shifts: no mel shifts */
#define kMelShifts 0
#endif

#ifndef FIRMWARE_INFERENCE_STRIDE_FRAMES /* frames between inferences once the window is full */
#define FIRMWARE_INFERENCE_STRIDE_FRAMES kNumFrames
#endif
#ifndef FIRMWARE_AVERAGE_WINDOW /* inferences averaged by postprocess */
#define FIRMWARE_AVERAGE_WINDOW 1
#endif
#ifndef FIRMWARE_TIME_ROLLS /* inferences per window, on its rotations by 0 .. FIRMWARE_TIME_ROLLS-1 frames */
#define FIRMWARE_TIME_ROLLS kTimeRolls
#endif
#ifndef FIRMWARE_MEL_SHIFTS /* each rotation also at mel shifts -FIRMWARE_MEL_SHIFTS .. +FIRMWARE_MEL_SHIFTS */
#define FIRMWARE_MEL_SHIFTS kMelShifts
#endif
/* Invokes per inference: every rotation at every mel shift. */
#define FIRMWARE_VIEWS (FIRMWARE_TIME_ROLLS * (2 * FIRMWARE_MEL_SHIFTS + 1))
#ifndef FIRMWARE_SCORE_THRESHOLD /* averaged probability needed to report a class */
#define FIRMWARE_SCORE_THRESHOLD 0.6f
#endif

#endif /* ESC_TF_INFERENCE_SCHEDULE_H_ */
