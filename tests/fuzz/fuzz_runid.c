/* fuzz_runid.c - run.id texts (fsb_run_ident_parse, what every reader of a run folder goes
 * through). Property: a text that parses formats back to itself byte for byte, and the keyed
 * diff of any two texts (the input against its own first half) stays in its buffer.
 */
#include "common.h"
#include "fsb/runfolder.h"
#include "fsb/status.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstr(data, size);
    fsb_run_ident id;
    if (fsb_run_ident_parse(&id, text, "run.id") == FSB_OK) {
        char *again = NULL;
        if (fsb_run_ident_format(&id, &again) != FSB_OK)
            fuzz_fail("parsed but does not format: %s", fsb_error_last());
        if (strcmp(again, text) != 0) fuzz_fail("formats back to other text");
        free(again);
    }
    char *half = fuzz_cstr(data, size / 2), diff[256];
    fsb_run_ident_diff(text, half, diff, sizeof diff);
    if (strlen(diff) >= sizeof diff) fuzz_fail("diff overran");
    free(half);
    free(text);
    return 0;
}
