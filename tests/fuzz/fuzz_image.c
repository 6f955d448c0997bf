/* fuzz_image.c - JPEG and PNG decoding (fsb_image_decode, the buffer form of
 * fsb_image_load) through libjpeg-turbo and libpng, format chosen by the first bytes.
 * Properties: a decoded image has a positive size within FSB_IMAGE_MAX_PIXELS and all of
 * its w*h*3 bytes are readable (ASan); a failure leaves the struct zeroed with a message.
 */
#include "common.h"
#include "fsb/image.h"
#include "fsb/status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fsb_image img;
    fsb_error_clear();
    int st = fsb_image_decode(&img, data, size, "fuzz");
    if (st) {
        if (img.px || img.w || img.h) fuzz_fail("a failed decode left pixels behind");
        if (!fsb_error_last()[0]) fuzz_fail("a failed decode left no message");
        return 0;
    }
    if (img.w <= 0 || img.h <= 0 || (int64_t)img.w * img.h > FSB_IMAGE_MAX_PIXELS || !img.px)
        fuzz_fail("decoded image of %dx%d", img.w, img.h);
    fuzz_touch(img.px, (size_t)img.w * img.h * 3);
    fsb_image_free(&img);
    return 0;
}
