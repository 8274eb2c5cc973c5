/* svgplot: LLaMA-Factory's smoothing to the last bit, and SVG files that
 * an XML parser (python3's xml.etree) reads, with one polyline point per
 * finite value and ticks at 1/2/5 x 10^k. */
#include "../../lib/svgplot.h"
#include "testhelp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmp[] = "/tmp/ds-test-svgplot.XXXXXX";
static int have_python;

/* Parse the SVG in tmp with xml.etree; one line back: how many points each
 * polyline has, the tick labels, the title and the axis names. */
static const char check_py[] =
	"import sys, xml.etree.ElementTree as E\n"
	"ns = '{http://www.w3.org/2000/svg}'\n"
	"r = E.parse(sys.argv[1]).getroot()\n"
	"assert r.tag == ns + 'svg'\n"
	"out = []\n"
	"for p in r.iter(ns + 'polyline'):\n"
	"    pts = [tuple(map(float, q.split(','))) for q in p.get('points').split()]\n"
	"    assert all(72 <= x <= 620 and 40 <= y <= 430 for x, y in pts), pts\n"
	"    out.append('%s=%d' % (p.get('class'), len(pts)))\n"
	"for g in ('xticks', 'yticks'):\n"
	"    for e in r.iter(ns + 'g'):\n"
	"        if e.get('class') == g:\n"
	"            out.append(g + '=' + ','.join(t.text for t in e.iter(ns + 'text')))\n"
	"texts = [t.text for t in r.iter(ns + 'text')]\n"
	"out.append('labels=' + str('step' in texts and 'loss' in texts))\n"
	"out.append('title=' + ''.join(t.text for t in r.iter(ns + 'text') if t.get('class') == 'title'))\n"
	"out.append('circles=%d' % len(list(r.iter(ns + 'circle'))))\n"
	"print(' '.join(out))\n";

/* Plot, then describe the file as check_py does; "" when python3 is not
 * there or the plot failed. Returns static storage. */
static const char *plot_and_describe(const double *x, const double *y, size_t n, const char *title)
{
	static char line[4096];
	line[0] = 0;
	FILE *f = fopen(tmp, "w");
	int rc = svgplot_loss(f, x, y, n, title);
	fclose(f);
	if (rc || !have_python) return line;
	char cmd[4096];
	snprintf(cmd, sizeof cmd, "python3 -c \"$DS_SVGCHECK\" %s", tmp);
	FILE *p = popen(cmd, "r");
	if (!p) return line;
	if (!fgets(line, sizeof line, p)) line[0] = 0;
	line[strcspn(line, "\n")] = 0;
	if (pclose(p)) line[0] = 0;
	return line;
}

static int described(const char *got, const char *want)
{
	if (!have_python) return 1;
	int ok = strstr(got, want) != NULL;
	if (!ok) printf("     | want \"%s\" in \"%s\"\n", want, got);
	return ok;
}

int main(void)
{
	close(mkstemp(tmp));
	setenv("DS_SVGCHECK", check_py, 1);
	have_python = system("python3 -c 'import xml.etree.ElementTree' 2>/dev/null") == 0;

	/* golden: LLaMA-Factory 0.9.5 extras/ploting.py smooth() on these */
	double in[10] = {2.5, 2.1, 1.9, 1.7, 1.8, 1.5, 1.4, 1.45, 1.3, 1.2}, out[10];
	static const double want[10] = {2.5, 2.1881707184653356, 1.9635205482194011,
		1.7580869901672092, 1.7907612495249954, 1.5640915706812437, 1.4361701792026764,
		1.4469515369101327, 1.3323920564723792, 1.2291827568456823};
	svgplot_smooth(in, 10, out);
	int same = 1;
	for (int i = 0; i < 10; i++) same &= fabs(out[i] - want[i]) <= 1e-15 * want[i];
	EXPECT(same, "smooth: LLaMA-Factory's EMA, 10 values");
	double y100[100], s100[100];
	for (int i = 0; i < 100; i++) y100[i] = 3.0 / (1 + 0.01 * i);
	svgplot_smooth(y100, 100, s100);
	EXPECT(fabs(s100[49] - 2.134475086275517) < 1e-14 && fabs(s100[99] - 1.5734391899982076) < 1e-14,
	       "smooth: the weight grows with n (100 values)");
	svgplot_smooth(in, 10, in);
	EXPECT(fabs(in[9] - want[9]) <= 1e-15, "smooth: in place");

	if (!have_python) {
		printf("skip tests/unit/test_svgplot.c: python3 not found; SVG not parsed\n");
		const char *path = getenv("DS_TEST_RESULTS");
		FILE *r = path ? fopen(path, "a") : NULL;
		if (r) fprintf(r, "skip test_svgplot: python3 not found\n"), fclose(r);
	}

	/* a run of 500 steps logged every 10, with two NaN and an inf */
	double step[50], loss[50];
	for (int i = 0; i < 50; i++) step[i] = 10.0 * (i + 1), loss[i] = 0.83 + 1.64 * exp(-i / 10.0);
	loss[7] = NAN, loss[30] = INFINITY, step[41] = NAN;
	const char *d = plot_and_describe(step, loss, 50, "training loss of out/ <R1 & Qwen>");
	EXPECT(described(d, "raw=47 smoothed=47 "), "50 values, 3 not finite: 47 points in each line");
	EXPECT(described(d, "xticks=0,100,200,300,400,500 "), "step ticks 0..500 by 100");
	EXPECT(described(d, "yticks=0.5,1.0,1.5,2.0,2.5 "), "loss ticks 0.5..2.5 by 0.5");
	EXPECT(described(d, "labels=True title=training loss of out/ <R1 & Qwen> circles=0"),
	       "axis names, the title escaped and read back whole");

	/* small loss values: ticks keep enough decimals */
	double st3[3] = {1, 2, 3}, l3[3] = {0.012, 0.011, 0.0105};
	d = plot_and_describe(st3, l3, 3, NULL);
	EXPECT(described(d, "xticks=1.0,1.5,2.0,2.5,3.0 ") && described(d, "yticks=0.0104,0.0106,0.0108,0.0110,0.0112,0.0114,0.0116,0.0118,0.0120 "),
	       "ticks: 0.5 and 0.0002 steps labelled without rounding away");

	/* the edge cases */
	d = plot_and_describe(NULL, NULL, 0, "empty");
	EXPECT(have_python ? d[0] && !strstr(d, "raw=") && strstr(d, "xticks=0.0,0.2,0.4,0.6,0.8,1.0 ") : 1,
	       "no values: a valid SVG with axes and no line");
	double one_s = 10, one_l = 2.0;
	d = plot_and_describe(&one_s, &one_l, 1, "one");
	EXPECT(described(d, "raw=1 smoothed=1 ") && described(d, "circles=1"), "one value: a point");
	double cs[20], cl[20];
	for (int i = 0; i < 20; i++) cs[i] = i, cl[i] = 1.25;
	d = plot_and_describe(cs, cl, 20, "flat");
	EXPECT(described(d, "raw=20 smoothed=20 ") && described(d, "yticks=1.10,1.15,1.20,1.25,1.30,1.35,1.40 "),
	       "constant loss: an axis around it");
	double nan2[2] = {NAN, INFINITY};
	d = plot_and_describe(cs, nan2, 2, "no finite \xff value \x01");
	EXPECT(described(d, "title=no finite ? value   circles=0") && !strstr(d, "raw="),
	       "nothing finite: no line; a title that is not UTF-8 is still valid XML");

	FILE *f = fopen("/dev/full", "w");
	if (f) {
		setvbuf(f, NULL, _IONBF, 0);
		EXPECT(svgplot_loss(f, step, loss, 50, "x") == -1, "a full disk is an error");
		fclose(f);
	}
	unlink(tmp);
	TEST_END();
}
