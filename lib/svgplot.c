/* svgplot.c — the loss curve as SVG: pick the axes, then write the file. */
#include "svgplot.h"
#include "check.h"
#include "utf8.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- geometry ---------------------------------------------------------- */

/* matplotlib's default figure (6.4 x 4.8 in at 100 dpi), and the plot
 * area inside it: room on the left for tick labels and the axis name. */
enum { W = 640, H = 480, LEFT = 72, RIGHT = 620, TOP = 40, BOTTOM = 430 };

typedef struct axis {
	double lo, hi;    /* the axis limits: whole multiples of step */
	double step;      /* between ticks: 1, 2 or 5 x 10^k */
	long k0, k1;      /* ticks at k * step for k0 <= k <= k1 */
	int decimals;     /* for the tick labels */
} axis;

/* The smallest of 1, 2, 5 x 10^k that is at least x. */
static double nice_at_least(double x)
{
	double mag = pow(10, floor(log10(x)));
	double f = x / mag;
	return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

/* Limits and ticks covering [lo, hi] with four to nine intervals. A range
 * of zero width (one point, a constant loss) is widened around it. */
static axis axis_make(double lo, double hi)
{
	axis a;
	if (!(hi > lo)) {
		double pad = lo != 0 ? fabs(lo) * 0.1 : 1;
		lo -= pad, hi += pad;
	}
	a.step = nice_at_least((hi - lo) / 8);
	/* the tolerance keeps 0.3 / 0.1 = 2.9999... from adding a tick */
	a.k0 = (long)floor(lo / a.step + 1e-9);
	a.k1 = (long)ceil(hi / a.step - 1e-9);
	if (a.k1 <= a.k0) a.k1 = a.k0 + 1;
	a.lo = (double)a.k0 * a.step;
	a.hi = (double)a.k1 * a.step;
	a.decimals = a.step < 1 ? (int)ceil(-log10(a.step) - 1e-9) : 0;
	return a;
}

static double map(const axis *a, double v, double from, double to)
{
	return from + (v - a->lo) / (a->hi - a->lo) * (to - from);
}

/* ---- the smoothing ----------------------------------------------------- */

void svgplot_smooth(const double *x, size_t n, double *out)
{
	if (!n) return;
	/* LLaMA-Factory extras/ploting.py smooth(), "EMA according to
	 * TensorBoard": longer runs are smoothed harder, from 0 toward 0.9. */
	double weight = 1.8 * (1 / (1 + exp(-0.05 * (double)n)) - 0.5);
	double last = x[0];
	for (size_t i = 0; i < n; i++) {
		last = last * weight + (1 - weight) * x[i];
		out[i] = last;
	}
}

/* ---- writing ----------------------------------------------------------- */

/* Text content for XML: escaped, and only valid UTF-8 without the control
 * characters XML 1.0 forbids. */
static void put_text(FILE *f, const char *s)
{
	size_t n = strlen(s), i = 0;
	while (i < n) {
		size_t ok = i + utf8_check(s + i, n - i);
		for (; i < ok; i++) {
			unsigned char ch = (unsigned char)s[i];
			if (ch == '&') fputs("&amp;", f);
			else if (ch == '<') fputs("&lt;", f);
			else if (ch == '>') fputs("&gt;", f);
			else if (ch < 0x20 && ch != '\t') fputc(' ', f);
			else fputc(ch, f);
		}
		if (i < n) fputc('?', f), i++;
	}
}

static void put_tick_label(FILE *f, const axis *a, long k)
{
	double v = (double)k * a->step;
	fprintf(f, "%.*f", a->decimals, k ? v : 0.0); /* never "-0.0" */
}

static void put_points(FILE *f, const char *cls, const char *style, const double *x,
		       const double *y, size_t m, const axis *ax, const axis *ay)
{
	fprintf(f, "<polyline class=\"%s\" fill=\"none\" stroke=\"#1f77b4\" %s points=\"", cls, style);
	for (size_t i = 0; i < m; i++)
		fprintf(f, "%s%.2f,%.2f", i ? " " : "", map(ax, x[i], LEFT, RIGHT),
			map(ay, y[i], BOTTOM, TOP));
	fputs("\"/>\n", f);
}

int svgplot_loss(FILE *f, const double *step, const double *loss, size_t n, const char *title)
{
	/* the finite pairs, in order */
	double *x = xmalloc((n ? n : 1) * sizeof *x);
	double *y = xmalloc((n ? n : 1) * sizeof *y);
	double *sm = xmalloc((n ? n : 1) * sizeof *sm);
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		if (isfinite(step[i]) && isfinite(loss[i])) x[m] = step[i], y[m] = loss[i], m++;
	svgplot_smooth(y, m, sm);

	double x0 = 0, x1 = 1, y0 = 0, y1 = 1;
	if (m) {
		x0 = x1 = x[0], y0 = y1 = y[0];
		for (size_t i = 1; i < m; i++) {
			x0 = fmin(x0, x[i]), x1 = fmax(x1, x[i]);
			y0 = fmin(y0, y[i]), y1 = fmax(y1, y[i]);
		}
	}
	axis ax = axis_make(x0, x1), ay = axis_make(y0, y1);

	fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		   "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
		   "viewBox=\"0 0 %d %d\" font-family=\"DejaVu Sans, sans-serif\" font-size=\"12\">\n"
		   "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n",
		W, H, W, H, W, H);
	if (title && *title) {
		fprintf(f, "<text class=\"title\" x=\"%d\" y=\"24\" text-anchor=\"middle\" font-size=\"14\">",
			(LEFT + RIGHT) / 2);
		put_text(f, title);
		fputs("</text>\n", f);
	}

	/* grid and ticks */
	fputs("<g class=\"xticks\" stroke=\"#dddddd\">\n", f);
	for (long k = ax.k0; k <= ax.k1; k++) {
		double px = map(&ax, (double)k * ax.step, LEFT, RIGHT);
		fprintf(f, "<line x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\"/>"
			   "<text x=\"%.2f\" y=\"%d\" text-anchor=\"middle\" stroke=\"none\" fill=\"black\">",
			px, TOP, px, BOTTOM, px, BOTTOM + 18);
		put_tick_label(f, &ax, k);
		fputs("</text>\n", f);
	}
	fputs("</g>\n<g class=\"yticks\" stroke=\"#dddddd\">\n", f);
	for (long k = ay.k0; k <= ay.k1; k++) {
		double py = map(&ay, (double)k * ay.step, BOTTOM, TOP);
		fprintf(f, "<line x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\"/>"
			   "<text x=\"%d\" y=\"%.2f\" text-anchor=\"end\" stroke=\"none\" fill=\"black\">",
			LEFT, py, RIGHT, py, LEFT - 6, py + 4);
		put_tick_label(f, &ay, k);
		fputs("</text>\n", f);
	}
	fprintf(f, "</g>\n<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"black\"/>\n"
		   "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">step</text>\n"
		   "<text transform=\"translate(16,%d) rotate(-90)\" text-anchor=\"middle\">loss</text>\n",
		LEFT, TOP, RIGHT - LEFT, BOTTOM - TOP, (LEFT + RIGHT) / 2, H - 14, (TOP + BOTTOM) / 2);

	/* the curves, as LLaMA-Factory colours them: C0, raw at alpha 0.4 */
	if (m) {
		put_points(f, "raw", "stroke-opacity=\"0.4\" stroke-width=\"1\"", x, y, m, &ax, &ay);
		put_points(f, "smoothed", "stroke-width=\"2\"", x, sm, m, &ax, &ay);
		if (m == 1) /* a line of one point draws nothing */
			fprintf(f, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"3\" fill=\"#1f77b4\"/>\n",
				map(&ax, x[0], LEFT, RIGHT), map(&ay, y[0], BOTTOM, TOP));
	} else {
		fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" fill=\"#888888\">no loss logged yet</text>\n",
			(LEFT + RIGHT) / 2, (TOP + BOTTOM) / 2);
	}

	/* the legend, top right */
	fprintf(f, "<g class=\"legend\">\n"
		   "<rect x=\"%d\" y=\"%d\" width=\"100\" height=\"44\" fill=\"white\" stroke=\"#cccccc\"/>\n"
		   "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#1f77b4\" stroke-opacity=\"0.4\"/>"
		   "<text x=\"%d\" y=\"%d\">original</text>\n"
		   "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#1f77b4\" stroke-width=\"2\"/>"
		   "<text x=\"%d\" y=\"%d\">smoothed</text>\n</g>\n</svg>\n",
		RIGHT - 108, TOP + 8, RIGHT - 100, TOP + 22, RIGHT - 76, TOP + 22, RIGHT - 70, TOP + 26,
		RIGHT - 100, TOP + 40, RIGHT - 76, TOP + 40, RIGHT - 70, TOP + 44);
	free(x);
	free(y);
	free(sm);
	return ferror(f) ? -1 : 0;
}
