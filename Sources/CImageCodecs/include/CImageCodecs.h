// The door to libpng and libjpeg(-turbo): both report errors by longjmp, which Swift cannot catch, so the calls that
// may fail live here in C and come back as a status and a message. Images are read from memory.
#ifndef CIMAGECODECS_H
#define CIMAGECODECS_H
#include <stddef.h>
#include <stdint.h>

enum {
    DC_IMAGE_PNG = 1,
    DC_IMAGE_JPEG = 2,
};

/// What a file's header declares: its kind, size and colour components (1 grey, 3 colour, including palette PNGs).
typedef struct {
    int kind;
    int width;
    int height;
    int components;
} dc_image_info;

/// Flags `dc_image_decode` reports about the pixels it wrote.
enum {
    DC_IMAGE_HAD_ALPHA = 1,     // some pixel was not opaque (composited onto white)
    DC_IMAGE_GREY_CONTENT = 2,  // every pixel had red = green = blue (before a conversion to grey)
};

/// The header of a PNG or JPEG held in `data`; 0 on success, else -1 with a message in `error`. Decodes no pixels.
int dc_image_header(const uint8_t *data, size_t size, dc_image_info *info, char *error, size_t error_size);

/// Decodes the whole image into `out` (height x width x channels bytes, rows top to bottom, channels 1 (grey) or 3
/// (RGB interleaved)); `out_size` must be exactly that, so a header that declares another size is an error, not an
/// overrun. 16-bit samples are scaled to 8, palettes expanded, transparency composited onto white, colour turned
/// grey by 0.299 R + 0.587 G + 0.114 B when one channel is asked for. Returns 0 and sets `flags`, or -1 and a message
/// (a truncated or corrupt file is an error).
int dc_image_decode(const uint8_t *data, size_t size, int channels, uint8_t *out, size_t out_size, int *flags,
                    char *error, size_t error_size);

/// A baseline JPEG of `pixels` (height x width x channels, channels 1 or 3) at `quality` (1-100), in a buffer the
/// caller releases with `dc_image_free`. 0 on success.
int dc_jpeg_encode(const uint8_t *pixels, int width, int height, int channels, int quality, uint8_t **out,
                   size_t *out_size, char *error, size_t error_size);

void dc_image_free(void *buffer);

#endif
