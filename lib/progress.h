/* progress.h — a one-line progress bar on stderr, only when stderr is a
 * terminal: records done, rate, and (when the input size is known) percent
 * and ETA. Redrawn at most ten times a second. */
#ifndef DS_PROGRESS_H
#define DS_PROGRESS_H

#include <stdint.h>

typedef struct progress {
	const char *label; /* borrowed */
	int64_t total;     /* bytes of input, or -1 when unknown */
	int on;
	double t0, last;
	uint64_t items, bytes;
} progress;

/* label is borrowed and must outlive p. total_bytes: -1 if unknown. */
void progress_start(progress *p, const char *label, int64_t total_bytes);
void progress_update(progress *p, uint64_t items, uint64_t bytes);
/* Erase the bar so the summary that follows starts on a clean line. */
void progress_finish(progress *p);

/* The bar's text, for tests: writes at most n bytes into buf. */
void progress_format(const progress *p, double now, char *buf, int n);

#endif
