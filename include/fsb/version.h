/* version.h - the versions of fsbench and of the libraries it was built and runs with, for
 * `bench version` and run manifests (runfolder.h). */
#ifndef FSB_VERSION_H
#define FSB_VERSION_H

#include <stddef.h>

/* "fsbench X; OpenBLAS ...; libpng ...; ..." into buf (always NUL-terminated). */
void fsb_versions(char *buf, size_t n);

#endif
