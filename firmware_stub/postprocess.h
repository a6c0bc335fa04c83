/* From the model's int8 output to a decision: dequantise, softmax, average, threshold.
 *
 * The model outputs logits (softmax is in the training loss), so scores are turned into
 * probabilities here before averaging over the last `window` inferences; a class is
 * reported when its averaged probability reaches `threshold`.  An inference may take
 * `views` model outputs (the window's rotations, kTimeRolls): their probabilities are
 * averaged into one inference before it joins the window.
 *
 * C99, no heap: RAM is sizeof(postprocess_t), about 4 * (POSTPROCESS_MAX_WINDOW + 2) *
 * kCategoryCount bytes.
 */
#ifndef ESC_TF_POSTPROCESS_H_
#define ESC_TF_POSTPROCESS_H_

#include <stdint.h>

#include "model_settings.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifndef POSTPROCESS_MAX_WINDOW
#define POSTPROCESS_MAX_WINDOW 8
#endif

typedef struct {
  float history[POSTPROCESS_MAX_WINDOW][kCategoryCount]; /* probabilities, one row per inference */
  float average[kCategoryCount];
  float views_sum[kCategoryCount]; /* probabilities of the current inference's views so far */
  int views;    /* model outputs per inference, >= 1 */
  int views_in; /* of them added so far */
  int window;   /* inferences averaged, 1..POSTPROCESS_MAX_WINDOW */
  int filled;   /* rows of history in use */
  int next;     /* row written next */
  float threshold;
} postprocess_t;

typedef struct {
  int top_class;   /* argmax of the averaged probabilities */
  float top_score; /* its averaged probability */
  int detected;    /* 1 when top_score >= threshold */
} postprocess_result_t;

/* Returns 0, or -1 (and leaves *p unusable) if window is not in 1..POSTPROCESS_MAX_WINDOW or
 * views < 1. */
int postprocess_init(postprocess_t *p, int window, int views, float threshold);

/* (q - zero_point) * scale for n values. */
void postprocess_dequantize(const int8_t *q, int n, float scale, int zero_point, float *out);

/* In-place softmax of n values (nothing when n <= 0). */
void postprocess_softmax(float *x, int n);

/* The indices of the k largest scores, largest first; ties go to the lower index.
 * Returns the number written, min(k, n). */
int postprocess_top_k(const float *scores, int n, int k, int *indices);

/* Add one model output (kCategoryCount int8 values quantised with kOutputScale /
 * kOutputZeroPoint).  When it completes an inference (its `views`-th output), decide on the
 * average of the last `window` inferences, write *result and return 1; otherwise return 0
 * and leave *result alone. */
int postprocess_update(postprocess_t *p, const int8_t *output, postprocess_result_t *result);

#ifdef __cplusplus
}
#endif

#endif /* ESC_TF_POSTPROCESS_H_ */
