/* clock.h — seconds on the monotonic clock, for rates, timeouts and
 * anything else that measures an interval (never the time of day). */
#ifndef DS_CLOCK_H
#define DS_CLOCK_H

#include <time.h>

static inline double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Sleep s seconds (a backoff, a pacing wait). */
static inline void sleep_s(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	nanosleep(&ts, NULL);
}

#endif
