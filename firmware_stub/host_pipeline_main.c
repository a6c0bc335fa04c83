/* Host driver of the device feature path (no TFLM): a clip in, the int8 model input out.
 *
 *   host_pipeline [-r] [-n CLIP_SAMPLES] [-s STRIDE] [-v VIEWS] INPUT OUTPUT
 *   host_pipeline -i
 *
 * INPUT is a WAV file (16-bit PCM, mono, kSampleRate) or, with -r, raw native-endian
 * int16; "-" reads stdin.  Samples go hop by hop through the same calls as main.cc
 * (feature_stream_push, then feature_buffer_copy_view of feature_stream_window).  OUTPUT gets
 * int8 tensors of kFeatureElementCount bytes (coefficient-major), one after another.
 *   -n N  the input is clips of N samples each; the stream is reset before every clip
 *         (default: the whole input is one clip)
 *   -s S  write the window after every S-th new frame once it is full (sliding window);
 *         default: only the window at the end of each clip
 *   -v V  write each window V times, rotated by 0, 1, ..., V-1 frames (model.time_rolls);
 *         default 1
 *   -m K  write those rotations at each mel shift -K .. +K, shift by shift (model.mel_shifts);
 *         default 0
 *   -i    print the build's shapes, quantisation and fingerprint, then exit
 * A clip shorter than kClipSamples is zero-padded to kClipSamples, as in training.
 * Exit status 1 when a clip does not fill the window, 2 on bad usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "feature_stream.h"
#include "model_settings.h"

typedef struct {
  int raw;
  unsigned long clip_samples; /* 0: one clip */
  unsigned long stride;       /* 0: last window of each clip only */
  unsigned long views;        /* rotations written per window */
  unsigned long mel_shifts;   /* each rotation at mel shifts -mel_shifts .. +mel_shifts */
  const char *in_path, *out_path;
} options_t;

static feature_stream_t stream;
static int8_t window[kFeatureElementCount];
static unsigned long wav_samples_left; /* samples left in the WAV data chunk */

static int usage(void) {
  fprintf(stderr, "usage: host_pipeline [-r] [-n CLIP_SAMPLES] [-s STRIDE] [-v VIEWS] [-m MEL_SHIFTS] INPUT OUTPUT\n"
                  "       host_pipeline -i\n");
  return 2;
}

static uint32_t le32(const unsigned char *b) {
  return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static unsigned le16(const unsigned char *b) { return (unsigned)b[0] | (unsigned)b[1] << 8; }

/* Leave `in` at the first sample of the data chunk and note its length; -1 if it is not
 * 16-bit mono PCM at kSampleRate. */
static int skip_wav_header(FILE *in) {
  unsigned char head[12], chunk[8], fmt[16];
  int have_fmt = 0;
  if (fread(head, 1, 12, in) != 12 || memcmp(head, "RIFF", 4) || memcmp(head + 8, "WAVE", 4)) return -1;
  while (fread(chunk, 1, 8, in) == 8) {
    uint32_t size = le32(chunk + 4);
    if (!memcmp(chunk, "fmt ", 4)) {
      if (size < 16 || fread(fmt, 1, 16, in) != 16) return -1;
      if (le16(fmt) != 1 || le16(fmt + 2) != 1 || le32(fmt + 4) != kSampleRate || le16(fmt + 14) != 16) return -1;
      have_fmt = 1;
      size -= 16;
    } else if (!memcmp(chunk, "data", 4)) {
      wav_samples_left = size / 2;
      return have_fmt ? 0 : -1;
    }
    for (size += size & 1u; size > 0; size--) /* chunks are padded to even sizes */
      if (fgetc(in) == EOF) return -1;
  }
  return -1;
}

/* Up to n samples from a WAV data chunk (little-endian) or a raw native-endian file. */
static size_t read_samples(FILE *in, int raw, int16_t *dst, size_t n) {
  size_t got, i;
  if (raw) return fread(dst, sizeof(int16_t), n, in);
  if (n > wav_samples_left) n = wav_samples_left;
  got = fread(dst, sizeof(int16_t), n, in);
  wav_samples_left -= got;
  for (i = 0; i < got; i++) {
    const unsigned char *b = (const unsigned char *)&dst[i];
    dst[i] = (int16_t)(uint16_t)le16(b);
  }
  return got;
}

/* The window as model inputs: its rotations at each mel shift (feature_buffer_copy_view); -1 if a write fails. */
static int write_views(const options_t *o, FILE *out) {
  const feature_buffer_t *features = feature_stream_window(&stream);
  uint32_t view;
  for (view = 0; view < o->views * (2 * o->mel_shifts + 1); view++) {
    feature_buffer_copy_view(features, view, (uint32_t)o->views, (uint32_t)o->mel_shifts, window);
    if (fwrite(window, 1, sizeof(window), out) != sizeof(window)) return -1;
  }
  return 0;
}

/* Push n <= kHopLength samples; write the window when a frame completes and it is due. */
static int push(const int16_t *samples, uint32_t n, const options_t *o, FILE *out) {
  if (feature_stream_push(&stream, samples, n) != 1) return 0;
  if (o->stride && feature_stream_full(&stream) && (stream.frames - kNumFrames) % o->stride == 0)
    return write_views(o, out);
  return 0;
}

/* One clip of `length` samples (0: until the end of the input), zero-padded to kClipSamples. */
static int run_clip(FILE *in, unsigned long length, const options_t *o, FILE *out, int *at_end) {
  int16_t hop[kHopLength];
  unsigned long done = 0;
  if (feature_stream_init(&stream)) return -1;
  for (;;) {
    size_t want = kHopLength, got;
    if (length && length - done < want) want = length - done;
    got = want ? read_samples(in, o->raw, hop, want) : 0;
    if (got < want) *at_end = 1;
    if (got == 0) break;
    if (push(hop, (uint32_t)got, o, out)) return -1;
    done += got;
  }
  if (done == 0 && *at_end) return 1; /* no clip left */
  while (done < kClipSamples) {
    uint32_t n = kClipSamples - done < kHopLength ? (uint32_t)(kClipSamples - done) : kHopLength;
    memset(hop, 0, sizeof(hop));
    if (push(hop, n, o, out)) return -1;
    done += n;
  }
  if (!feature_stream_full(&stream)) {
    fprintf(stderr, "host_pipeline: a clip gave %lu frames, the model needs %d\n", (unsigned long)stream.frames,
            kNumFrames);
    return -2;
  }
  return o->stride ? 0 : write_views(o, out);
}

static int parse(int argc, char **argv, options_t *o) {
  int i;
  for (i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-r")) {
      o->raw = 1;
    } else if (!strcmp(argv[i], "-n") && i + 1 < argc) {
      o->clip_samples = strtoul(argv[++i], NULL, 10);
      if (!o->clip_samples) return -1;
    } else if (!strcmp(argv[i], "-s") && i + 1 < argc) {
      o->stride = strtoul(argv[++i], NULL, 10);
      if (!o->stride) return -1;
    } else if (!strcmp(argv[i], "-v") && i + 1 < argc) {
      o->views = strtoul(argv[++i], NULL, 10);
      if (!o->views || o->views > kNumFrames) return -1;
    } else if (!strcmp(argv[i], "-m") && i + 1 < argc) {
      o->mel_shifts = strtoul(argv[++i], NULL, 10);
      if (o->mel_shifts >= kNumCoefficients) return -1;
    } else if (!o->in_path && (argv[i][0] != '-' || !strcmp(argv[i], "-"))) {
      o->in_path = argv[i];
    } else if (!o->out_path && argv[i][0] != '-') {
      o->out_path = argv[i];
    } else {
      return -1;
    }
  }
  return o->in_path && o->out_path ? 0 : -1;
}

int main(int argc, char **argv) {
  options_t opts;
  FILE *in, *out;
  int status = 0, at_end = 0;
  unsigned long clips = 0;
  if (argc == 2 && !strcmp(argv[1], "-i")) {
    printf("fingerprint %s\nsample_rate %d\nclip_samples %d\nhop_length %d\ncoefficients %d\nframes %d\n"
           "input_scale %.9g\ninput_zero_point %d\n",
           frontend_fingerprint(), kSampleRate, kClipSamples, kHopLength, kNumCoefficients, kNumFrames,
           (double)kInputScale, kInputZeroPoint);
    return 0;
  }
  memset(&opts, 0, sizeof(opts));
  opts.views = 1;
  if (parse(argc, argv, &opts)) return usage();
  in = strcmp(opts.in_path, "-") ? fopen(opts.in_path, "rb") : stdin;
  if (!in) {
    perror(opts.in_path);
    return 1;
  }
  if (!opts.raw && skip_wav_header(in)) {
    fprintf(stderr, "host_pipeline: %s: not a 16-bit mono PCM WAV at %d Hz (use -r for raw int16)\n",
            opts.in_path, kSampleRate);
    return 1;
  }
  if (!(out = fopen(opts.out_path, "wb"))) {
    perror(opts.out_path);
    return 1;
  }
  while (!at_end && status == 0) {
    status = run_clip(in, opts.clip_samples, &opts, out, &at_end);
    if (status == 0) clips++;
  }
  if (in != stdin) fclose(in);
  if (fclose(out) || status < 0 || clips == 0) {
    if (status == -1 || clips == 0) fprintf(stderr, "host_pipeline: %s\n", clips ? "write failed" : "no samples");
    return 1;
  }
  return 0;
}
