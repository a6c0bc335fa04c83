/* Host driver for the front end: raw samples in, float32 feature frames out.
 *
 *   host_frontend [-f s16|f32] [-r] [-b] [-c CHUNK] [-q SCALE ZERO_POINT] [-t] [-i] [INPUT]
 *
 * Reads native-endian int16 (default) or float32 samples from INPUT or stdin and writes
 * one frame after another, FRONTEND_NUM_COEFFS float32 each, to stdout.
 *   -r        raw features (no mean/std normalisation)
 *   -b        batch: process each complete frame directly, not through the stream
 *   -c CHUNK  push CHUNK samples at a time (1..FRONTEND_HOP_LENGTH; default one hop);
 *             the tail shorter than a chunk is pushed too
 *   -q S Z    write int8 frames quantised with frontend_quantize(scale S, zero point Z)
 *   -t        trace to stderr: "<samples pushed so far> <push result>" per push
 *   -i        print the build's shapes and fingerprint to stdout and exit
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend.h"

static frontend_state_t state;
static float frame_out[FRONTEND_NUM_COEFFS];

typedef struct {
  int f32, raw, batch, trace, info, quantize, zero_point;
  float scale;
  unsigned long chunk;
  const char *path;
} options_t;

static options_t opts;

static int usage(void) {
  fprintf(stderr, "usage: host_frontend [-f s16|f32] [-r] [-b] [-c CHUNK] [-q SCALE ZERO_POINT] [-t] [-i] [INPUT]\n");
  return 2;
}

static int parse(int argc, char **argv, options_t *o) {
  int i;
  o->chunk = FRONTEND_HOP_LENGTH;
  for (i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-f") && i + 1 < argc) {
      const char *fmt = argv[++i];
      if (strcmp(fmt, "s16") && strcmp(fmt, "f32")) return -1;
      o->f32 = !strcmp(fmt, "f32");
    } else if (!strcmp(argv[i], "-c") && i + 1 < argc) {
      o->chunk = strtoul(argv[++i], NULL, 10);
      if (o->chunk < 1 || o->chunk > FRONTEND_HOP_LENGTH) return -1;
    } else if (!strcmp(argv[i], "-q") && i + 2 < argc) {
      o->quantize = 1;
      o->scale = strtof(argv[++i], NULL);
      o->zero_point = atoi(argv[++i]);
      if (!(o->scale > 0.0f)) return -1;
    } else if (!strcmp(argv[i], "-r")) {
      o->raw = 1;
    } else if (!strcmp(argv[i], "-b")) {
      o->batch = 1;
    } else if (!strcmp(argv[i], "-t")) {
      o->trace = 1;
    } else if (!strcmp(argv[i], "-i")) {
      o->info = 1;
    } else if (argv[i][0] != '-' && !o->path) {
      o->path = argv[i];
    } else {
      return -1;
    }
  }
  return 0;
}

/* The whole stream as bytes; NULL on error. */
static unsigned char *read_all(FILE *in, size_t *size) {
  size_t cap = 1 << 18, n = 0, got;
  unsigned char *bytes = malloc(cap);
  while (bytes && (got = fread(bytes + n, 1, cap - n, in)) > 0) {
    n += got;
    if (n == cap) {
      unsigned char *grown = realloc(bytes, 2 * cap);
      if (!grown) free(bytes);
      bytes = grown;
      cap *= 2;
    }
  }
  if (bytes && ferror(in)) {
    free(bytes);
    return NULL;
  }
  *size = n;
  return bytes;
}

static int write_frame(void) {
  int8_t q[FRONTEND_NUM_COEFFS];
  if (!opts.quantize) return fwrite(frame_out, sizeof(float), FRONTEND_NUM_COEFFS, stdout) == FRONTEND_NUM_COEFFS ? 0 : -1;
  frontend_quantize(frame_out, FRONTEND_NUM_COEFFS, opts.scale, opts.zero_point, q);
  return fwrite(q, 1, FRONTEND_NUM_COEFFS, stdout) == FRONTEND_NUM_COEFFS ? 0 : -1;
}

static int run_batch(const float *x, size_t n) {
  size_t start;
  for (start = 0; start + FRONTEND_FRAME_LENGTH <= n; start += FRONTEND_HOP_LENGTH) {
    frontend_process_frame(&state, x + start, frame_out);
    if (write_frame()) return -1;
  }
  return 0;
}

/* One push; int16 input goes through the int16 entry points, whole hops through push_hop. */
static int push(const float *x, const int16_t *pcm, uint32_t step) {
  if (step == FRONTEND_HOP_LENGTH)
    return pcm ? frontend_push_hop(&state, pcm, frame_out) : frontend_push_hop_f32(&state, x, frame_out);
  return pcm ? frontend_push_samples(&state, pcm, step, frame_out)
             : frontend_push_samples_f32(&state, x, step, frame_out);
}

static int run_stream(const float *x, const int16_t *pcm, size_t n, const options_t *o) {
  size_t done = 0;
  while (done < n) {
    uint32_t step = (uint32_t)(n - done < o->chunk ? n - done : o->chunk);
    int got = push(x + done, pcm ? pcm + done : NULL, step);
    done += step;
    if (o->trace) fprintf(stderr, "%lu %d\n", (unsigned long)done, got);
    if (got < 0 || (got == 1 && write_frame())) return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  FILE *in = stdin;
  unsigned char *bytes;
  float *x;
  int16_t *pcm = NULL;
  size_t size, n, i;
  int status;
  memset(&opts, 0, sizeof(opts));
  if (parse(argc, argv, &opts)) return usage();
  if (opts.info) {
    printf("fingerprint %s\nsample_rate %d\nframe_length %d\nhop_length %d\ncoefficients %d\nmfcc %d\n",
           frontend_fingerprint(), FRONTEND_SAMPLE_RATE, FRONTEND_FRAME_LENGTH, FRONTEND_HOP_LENGTH,
           FRONTEND_NUM_COEFFS, FRONTEND_FEATURES_KIND_MFCC);
    return 0;
  }
  if (opts.path && !(in = fopen(opts.path, "rb"))) {
    perror(opts.path);
    return 1;
  }
  bytes = read_all(in, &size);
  if (in != stdin) fclose(in);
  n = bytes ? size / (opts.f32 ? sizeof(float) : sizeof(int16_t)) : 0;
  x = malloc((n ? n : 1) * sizeof(float));
  if (!opts.f32) pcm = malloc((n ? n : 1) * sizeof(int16_t));
  if (!bytes || !x || (!opts.f32 && !pcm) || frontend_init(&state)) {
    fprintf(stderr, "host_frontend: read error, out of memory or FFT init failed\n");
    return 1;
  }
  if (opts.f32) {
    memcpy(x, bytes, n * sizeof(float));
  } else {
    memcpy(pcm, bytes, n * sizeof(int16_t));
    for (i = 0; i < n; i++) x[i] = (float)pcm[i] * (1.0f / 32768.0f);
  }
  free(bytes);
  frontend_set_normalize(&state, !opts.raw);
  status = opts.batch ? run_batch(x, n) : run_stream(x, pcm, n, &opts);
  free(pcm);
  free(x);
  if (status || fflush(stdout)) {
    fprintf(stderr, "host_frontend: write failed\n");
    return 1;
  }
  return 0;
}
