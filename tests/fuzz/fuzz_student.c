/* fuzz_student.c - `--student` spec strings ("key=value,...": fsb_student_opts_parse and
 * fsb_student_item_check). Properties: an accepted spec prints (fsb_student_opts_string)
 * to a canonical spec that parses back to the same options; a lone item that the item check
 * accepts is accepted by the parser too (momentum aside: nesterov=1 needs momentum > 0).
 */
#include "common.h"
#include "fsb/status.h"
#include "fsb/student.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *spec = fuzz_cstr(data, size);
    fsb_student_opts o, back;
    fsb_student_opts_default(&o);
    if (fsb_student_opts_parse(&o, spec, "--student") == FSB_OK) {
        char canon[FSB_STUDENT_SPEC_MAX], again[FSB_STUDENT_SPEC_MAX];
        fsb_student_opts_string(&o, canon, sizeof canon);
        if (strlen(canon) + 1 >= sizeof canon) fuzz_fail("canonical spec fills its buffer");
        fsb_student_opts_default(&back);
        if (fsb_student_opts_parse(&back, canon, "--student"))
            fuzz_fail("canonical spec '%s' does not parse: %s", canon, fsb_error_last());
        fsb_student_opts_string(&back, again, sizeof again);
        if (memcmp(&o, &back, sizeof o) != 0 || strcmp(canon, again) != 0)
            fuzz_fail("'%s' does not parse back to the same options ('%s')", canon, again);
    }
    size_t len = strlen(spec);
    if (!strchr(spec, ',') && fsb_student_item_check(spec, len, "--student") == FSB_OK &&
        strncmp(spec, "momentum=", 9) != 0) {
        fsb_student_opts_default(&o);
        if (fsb_student_opts_parse(&o, spec, "--student"))
            fuzz_fail("item '%s' passes the item check but not the parser: %s", spec,
                      fsb_error_last());
    }
    free(spec);
    return 0;
}
