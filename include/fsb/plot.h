/* plot.h - PNG plots drawn by gnuplot run as a subprocess.
 *
 * The script is saved beside the PNG so a user can redraw or restyle it (`gnuplot X.gp`).
 * gnuplot writes into a temporary file renamed into place; a missing or failing gnuplot is
 * never an error, only a note, so plots can never fail a run.
 */
#ifndef FSB_PLOT_H
#define FSB_PLOT_H

#include <stddef.h>

/* Write gp_path = a terminal/output preamble (pngcairo when available, else png; output is
 * the gnuplot variable `outfile`, default png_path's basename) followed by `script`, then run
 * gnuplot on it. *plotted = 1 when png_path was written; otherwise note[] says why. Returns
 * non-zero only when the script file itself cannot be written. */
int fsb_plot(const char *gp_path, const char *script, const char *png_path, int *plotted,
             char *note, size_t note_n);

#endif
