/* Unit checks of postprocess: dequantisation, softmax, top-k, averaging, threshold.
 * Built against any export's model_settings.h (kCategoryCount >= 2); prints
 * "postprocess: N checks passed". */
#include <math.h>
#include <stdio.h>

#include "postprocess.h"

static int checks, failures;

static void check(int ok, const char *what) {
  checks++;
  if (!ok && failures++ < 10) fprintf(stderr, "FAIL %s\n", what);
}

static int close_to(float a, float b) { return fabsf(a - b) <= 1e-6f * (1.0f + fabsf(b)); }

static void check_top_k(void) {
  const float scores[6] = {0.1f, 0.5f, 0.5f, 0.2f, 0.9f, 0.5f};
  int idx[6], n;
  n = postprocess_top_k(scores, 6, 3, idx);
  check(n == 3 && idx[0] == 4 && idx[1] == 1 && idx[2] == 2, "top-3 with ties keeps lower indices");
  n = postprocess_top_k(scores, 6, 6, idx);
  check(n == 6 && idx[0] == 4 && idx[1] == 1 && idx[2] == 2 && idx[3] == 5 && idx[4] == 3 && idx[5] == 0,
        "full sort, stable");
  n = postprocess_top_k(scores, 3, 10, idx);
  check(n == 3 && idx[0] == 1 && idx[1] == 2 && idx[2] == 0, "k > n gives n");
  n = postprocess_top_k(scores, 6, 1, idx);
  check(n == 1 && idx[0] == 4, "top-1");
}

static void check_softmax(void) {
  float x[3] = {1000.0f, 999.0f, -1000.0f}, y[3] = {0.0f, 0.0f, 0.0f};
  postprocess_softmax(x, 3);
  check(close_to(x[0] + x[1] + x[2], 1.0f), "softmax sums to 1");
  check(close_to(x[0], 1.0f / (1.0f + expf(-1.0f))) && x[2] == 0.0f, "softmax of large logits");
  postprocess_softmax(y, 3);
  check(close_to(y[0], 1.0f / 3.0f) && close_to(y[2], 1.0f / 3.0f), "softmax of equal logits");
  postprocess_softmax(y, 0); /* nothing to do, nothing read or written */
  check(close_to(y[0], 1.0f / 3.0f), "softmax of no values");
}

static void check_dequantize(void) {
  const int8_t q[3] = {-128, 5, 127};
  float out[3];
  postprocess_dequantize(q, 3, 0.5f, 5, out);
  check(out[0] == -66.5f && out[1] == 0.0f && out[2] == 61.0f, "dequantize");
}

/* Expected probabilities of one int8 output row, computed with the building blocks. */
static void probabilities(const int8_t *q, float *p) {
  postprocess_dequantize(q, kCategoryCount, kOutputScale, kOutputZeroPoint, p);
  postprocess_softmax(p, kCategoryCount);
}

/* p's average and result are the mean of probs[first..last] (rows of equal weight) and its top-1. */
static void check_mean(const postprocess_t *p, const postprocess_result_t *r, float (*probs)[kCategoryCount],
                       int first, int last, const char *what) {
  float avg[kCategoryCount];
  int c, k, best;
  for (c = 0; c < kCategoryCount; c++) {
    avg[c] = 0.0f;
    for (k = first; k <= last; k++) avg[c] += probs[k][c];
    avg[c] /= (float)(last - first + 1);
    check(close_to(p->average[c], avg[c]), what);
  }
  postprocess_top_k(avg, kCategoryCount, 1, &best);
  check(r->top_class == best && close_to(r->top_score, avg[best]), "result is the averaged top-1");
}

static void check_averaging(void) {
  static int8_t rows[5][kCategoryCount];
  static float probs[5][kCategoryCount];
  postprocess_t p;
  postprocess_result_t r;
  int i, c;
  check(postprocess_init(&p, 0, 1, 0.5f) == -1 && postprocess_init(&p, POSTPROCESS_MAX_WINDOW + 1, 1, 0.5f) == -1,
        "window out of range refused");
  check(postprocess_init(&p, 3, 0, 0.5f) == -1, "no views refused");
  check(postprocess_init(&p, 3, 1, 0.0f) == 0, "init");
  for (i = 0; i < 5; i++) {
    for (c = 0; c < kCategoryCount; c++) rows[i][c] = (int8_t)(-100 + 3 * c);
    rows[i][(i + 1) % kCategoryCount] = (int8_t)(100 - 10 * i); /* a different winner each time */
    probabilities(rows[i], probs[i]);
  }
  for (i = 0; i < 5; i++) {
    check(postprocess_update(&p, rows[i], &r) == 1 && r.detected, "one view: every output decides");
    check_mean(&p, &r, probs, i >= 2 ? i - 2 : 0, i, "average of the last 3 inferences");
  }
  postprocess_init(&p, 1, 1, 0.999f);
  for (c = 0; c < kCategoryCount; c++) rows[0][c] = 0;
  postprocess_update(&p, rows[0], &r);
  check(!r.detected && r.top_class == 0, "flat scores stay under the threshold; tie goes to class 0");
}

/* Two views per inference, two inferences averaged: after outputs 0..5 the decisions come at
 * outputs 1, 3, 5, each on the mean of (the mean of each inference's two views). */
static void check_views(void) {
  static int8_t rows[6][kCategoryCount];
  static float probs[6][kCategoryCount];
  postprocess_t p;
  postprocess_result_t r;
  int i, c;
  check(postprocess_init(&p, 2, 2, 0.0f) == 0, "init with views");
  for (i = 0; i < 6; i++) {
    for (c = 0; c < kCategoryCount; c++) rows[i][c] = (int8_t)(-90 + 5 * ((c + 7 * i) % 30));
    probabilities(rows[i], probs[i]);
  }
  for (i = 0; i < 6; i++) {
    r.top_class = -1;
    if (i % 2 == 0) {
      check(postprocess_update(&p, rows[i], &r) == 0 && r.top_class == -1, "first view: no decision, result untouched");
      continue;
    }
    check(postprocess_update(&p, rows[i], &r) == 1, "last view decides");
    /* The last two inferences: up to four views, all of equal weight. */
    check_mean(&p, &r, probs, i >= 3 ? i - 3 : 0, i, "average of the views of the last 2 inferences");
  }
}

int main(void) {
  check_top_k();
  check_softmax();
  check_dequantize();
  check_averaging();
  check_views();
  if (failures) {
    fprintf(stderr, "postprocess: %d of %d checks failed\n", failures, checks);
    return 1;
  }
  printf("postprocess: %d checks passed\n", checks);
  return 0;
}
