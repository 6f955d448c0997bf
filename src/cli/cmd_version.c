/* cmd_version.c - `bench version`: what a bug report or a run manifest needs to know. */
#include "cli.h"
#include "fsb/blas.h"
#include "fsb/layers.h"
#include "fsb/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void cpu_model(char *buf, size_t n)
{
    snprintf(buf, n, "unknown");
    FILE *fp = fopen("/proc/cpuinfo", "r");
    if (!fp) return;
    char line[512];
    while (fgets(line, sizeof line, fp)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *v = strchr(line, ':');
            if (v) {
                v += 1 + (v[1] == ' ');
                v[strcspn(v, "\n")] = '\0';
                snprintf(buf, n, "%s", v);
            }
            break;
        }
    }
    fclose(fp);
}

int fsb_cmd_version(int argc, char **argv)
{
    if (argc > 1) {
        if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
            printf("usage: bench version   (also bench --version): fsbench's version, the CPU "
                   "the OpenBLAS build and kernels in use, and whether oneDNN is compiled in\n");
            return 0;
        }
        return fsb_error(FSB_EINVAL, "unexpected argument '%s' (bench version takes none)",
                         argv[1]);
    }
    char cpu[256];
    cpu_model(cpu, sizeof cpu);
    const char *env = getenv("OPENBLAS_CORETYPE");
    printf("fsbench %s\n", FSB_VERSION);
    printf("cpu: %s\n", cpu);
    printf("openblas: %s\n", fsb_blas_config());
    printf("openblas core: %s (OPENBLAS_CORETYPE=%s%s)\n", fsb_blas_core(), env ? env : "unset",
           env && getenv("FSB_BLAS_AUTO") ? ", selected by fsbench for this CPU" : "");
    if (fsb_dnnl_available())
        printf("onednn: %s (convolution backend onednn available; default gemm)\n",
               fsb_dnnl_version());
    else
        printf("onednn: not compiled in (convolution backend gemm only)\n");
    return 0;
}
