/* svgplot.h — a training-loss curve as a standalone SVG file.
 *
 * The picture LLaMA-Factory's plot_loss draws with matplotlib
 * (extras/ploting.py), without Python: the raw loss faint, its
 * exponential moving average bold, axes "step" and "loss" with ticks at
 * 1, 2 or 5 x 10^k, a title and a legend; 640x480 like matplotlib's
 * default figure at 100 dpi. The two curves are <polyline> elements with
 * class="raw" and class="smoothed", one point per plotted value.
 */
#ifndef DS_SVGPLOT_H
#define DS_SVGPLOT_H

#include <stddef.h>
#include <stdio.h>

/* LLaMA-Factory's smooth(): an EMA whose weight grows with the number of
 * values, 1.8 * (sigmoid(0.05 n) - 0.5), starting from the first value.
 * Writes n values to out (may be x itself). Borrows x and out. */
void svgplot_smooth(const double *x, size_t n, double *out);

/* Write the plot of loss[i] against step[i], i < n, to f. Pairs where
 * either value is NaN or infinite are left out (and the smoothing runs over
 * the rest); n = 0, a single point and a constant loss all give a valid
 * picture. title may be NULL; it is escaped for XML (bytes that are not
 * UTF-8 become '?'). Returns 0, or -1 when a write failed (ferror). Borrows
 * everything; does not close f. */
int svgplot_loss(FILE *f, const double *step, const double *loss, size_t n, const char *title);

#endif
