/* Output post-processing; see postprocess.h.  C99, no heap. */
#include "postprocess.h"

#include <math.h>
#include <string.h>

int postprocess_init(postprocess_t *p, int window, int views, float threshold) {
  memset(p, 0, sizeof(*p));
  if (window < 1 || window > POSTPROCESS_MAX_WINDOW || views < 1) return -1;
  p->window = window;
  p->views = views;
  p->threshold = threshold;
  return 0;
}

void postprocess_dequantize(const int8_t *q, int n, float scale, int zero_point, float *out) {
  int i;
  for (i = 0; i < n; i++) out[i] = (float)(q[i] - zero_point) * scale;
}

void postprocess_softmax(float *x, int n) {
  float max, sum = 0.0f;
  int i;
  if (n <= 0) return;
  max = x[0];
  for (i = 1; i < n; i++)
    if (x[i] > max) max = x[i];
  for (i = 0; i < n; i++) {
    x[i] = expf(x[i] - max); /* shifted by the max so expf cannot overflow */
    sum += x[i];
  }
  for (i = 0; i < n; i++) x[i] /= sum;
}

int postprocess_top_k(const float *scores, int n, int k, int *indices) {
  int count = 0, i, j;
  if (k > n) k = n;
  /* Insertion into a sorted list of k: fine for k << n, and ties keep the lower index
   * because a later index only moves ahead of strictly smaller scores. */
  for (i = 0; i < n; i++) {
    int pos = count < k ? count : k;
    while (pos > 0 && scores[i] > scores[indices[pos - 1]]) pos--;
    if (pos >= k) continue;
    for (j = (count < k ? count : k - 1); j > pos; j--) indices[j] = indices[j - 1];
    indices[pos] = i;
    if (count < k) count++;
  }
  return count;
}

int postprocess_update(postprocess_t *p, const int8_t *output, postprocess_result_t *result) {
  float *row = p->history[p->next], view[kCategoryCount];
  int i, r, best = 0;  /* initialised: GCC -O3 -Werror cannot see that top_k always writes it */
  postprocess_dequantize(output, kCategoryCount, kOutputScale, kOutputZeroPoint, view);
  postprocess_softmax(view, kCategoryCount);
  for (i = 0; i < kCategoryCount; i++) p->views_sum[i] = (p->views_in ? p->views_sum[i] : 0.0f) + view[i];
  if (++p->views_in < p->views) return 0;
  for (i = 0; i < kCategoryCount; i++) row[i] = p->views_sum[i] / (float)p->views;
  p->views_in = 0;
  p->next = (p->next + 1) % p->window;
  if (p->filled < p->window) p->filled++;
  for (i = 0; i < kCategoryCount; i++) {
    float sum = 0.0f;
    for (r = 0; r < p->filled; r++) sum += p->history[r][i];
    p->average[i] = sum / (float)p->filled;
  }
  postprocess_top_k(p->average, kCategoryCount, 1, &best);
  result->top_class = best;
  result->top_score = p->average[best];
  result->detected = result->top_score >= p->threshold;
  return 1;
}
