/* progress.c — TTY-aware progress line with rate and ETA. */
#include "progress.h"
#include "clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

void progress_start(progress *p, const char *label, int64_t total_bytes)
{
	p->label = label;
	p->total = total_bytes;
	p->on = isatty(STDERR_FILENO) && !getenv("DS_NO_PROGRESS");
	p->t0 = p->last = now_s();
	p->items = p->bytes = 0;
}

static void hms(double s, char *buf, int n)
{
	long t = (long)(s + 0.5);
	if (t >= 3600)
		snprintf(buf, (size_t)n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
	else
		snprintf(buf, (size_t)n, "%ld:%02ld", t / 60, t % 60);
}

void progress_format(const progress *p, double now, char *buf, int n)
{
	double dt = now - p->t0;
	double rate = dt > 0 ? (double)p->items / dt : 0;
	int k = snprintf(buf, (size_t)n, "%s: %llu records, %.1f/s", p->label,
			 (unsigned long long)p->items, rate);
	if (k < 0 || k >= n) return;
	if (p->total > 0 && p->bytes > 0) {
		double frac = (double)p->bytes / (double)p->total;
		if (frac > 1) frac = 1;
		char eta[32];
		hms(dt / frac - dt, eta, sizeof eta);
		snprintf(buf + k, (size_t)(n - k), ", %3.0f%%, ETA %s", frac * 100, eta);
	}
}

void progress_update(progress *p, uint64_t items, uint64_t bytes)
{
	p->items = items;
	p->bytes = bytes;
	if (!p->on) return;
	double t = now_s();
	if (t - p->last < 0.1) return;
	p->last = t;
	char line[256];
	progress_format(p, t, line, sizeof line);
	fprintf(stderr, "\r%s\033[K", line);
}

void progress_finish(progress *p)
{
	if (p->on) fputs("\r\033[K", stderr);
}
