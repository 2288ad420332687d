// PNG through libpng and JPEG through libjpeg(-turbo), from memory, with their longjmp errors turned into a status
// and a message (CImageCodecs.h says what each call does).
#include "CImageCodecs.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
#include <jerror.h>

static void set_error(char *error, size_t error_size, const char *message) {
    if (error && error_size > 0) snprintf(error, error_size, "%s", message);
}

static int is_png(const uint8_t *data, size_t size) {
    return size >= 8 && png_sig_cmp((png_const_bytep)data, 0, 8) == 0;
}

static int is_jpeg(const uint8_t *data, size_t size) {
    return size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;
}

// MARK: - PNG

typedef struct {
    jmp_buf jump;
    char message[200];
    const uint8_t *data;
    size_t size, position;
} png_context;

static void png_fail(png_structp png, png_const_charp message) {
    png_context *context = (png_context *)png_get_error_ptr(png);
    snprintf(context->message, sizeof context->message, "%s", message);
    longjmp(context->jump, 1);
}

static void png_warn(png_structp png, png_const_charp message) {
    (void)png;
    (void)message;  // ancillary-chunk complaints (a bad gAMA, an sRGB profile) do not stop a read
}

static void png_read_memory(png_structp png, png_bytep out, size_t count) {
    png_context *context = (png_context *)png_get_io_ptr(png);
    if (count > context->size - context->position) png_error(png, "the file ends early (a truncated PNG)");
    memcpy(out, context->data + context->position, count);
    context->position += count;
}

// Opens `data` and reads up to the image header. 0, or -1 with context->message set (after the longjmp).
static int png_open(png_context *context, png_structp *png, png_infop *info) {
    *png = png_create_read_struct(PNG_LIBPNG_VER_STRING, context, png_fail, png_warn);
    if (!*png) { snprintf(context->message, sizeof context->message, "out of memory"); return -1; }
    *info = png_create_info_struct(*png);
    if (!*info) { snprintf(context->message, sizeof context->message, "out of memory"); return -1; }
    png_set_read_fn(*png, context, png_read_memory);
    // Chunks other than the image's own may be large (text, profiles): libpng's default caps keep them bounded.
    return 0;
}

static int png_header(const uint8_t *data, size_t size, dc_image_info *info, char *error, size_t error_size) {
    png_context context = {.data = data, .size = size};
    png_structp png = NULL;
    png_infop pinfo = NULL;
    // Opened before the jump point, so that `png` and `pinfo` do not change after it.
    if (png_open(&context, &png, &pinfo) != 0) {
        png_destroy_read_struct(&png, &pinfo, NULL);
        set_error(error, error_size, context.message);
        return -1;
    }
    if (setjmp(context.jump)) {
        png_destroy_read_struct(&png, &pinfo, NULL);
        set_error(error, error_size, context.message);
        return -1;
    }
    png_read_info(png, pinfo);
    int color_type = png_get_color_type(png, pinfo);
    info->kind = DC_IMAGE_PNG;
    info->width = (int)png_get_image_width(png, pinfo);
    info->height = (int)png_get_image_height(png, pinfo);
    info->components = (color_type & PNG_COLOR_MASK_COLOR) ? 3 : 1;
    png_destroy_read_struct(&png, &pinfo, NULL);
    return 0;
}

// Decodes to RGBA, 8 bits per sample, into a buffer of its own (rows), then `out` from it.
static int png_decode(const uint8_t *data, size_t size, uint8_t **rgba, int *width, int *height, char *error,
                      size_t error_size) {
    png_context context = {.data = data, .size = size};
    png_structp png = NULL;
    png_infop pinfo = NULL;
    png_bytep *volatile rows = NULL;
    uint8_t *volatile pixels = NULL;
    if (png_open(&context, &png, &pinfo) != 0) {
        png_destroy_read_struct(&png, &pinfo, NULL);
        set_error(error, error_size, context.message);
        return -1;
    }
    if (setjmp(context.jump)) {
        png_destroy_read_struct(&png, &pinfo, NULL);
        free(rows);
        free(pixels);
        set_error(error, error_size, context.message);
        return -1;
    }
    png_read_info(png, pinfo);
    int color_type = png_get_color_type(png, pinfo), depth = png_get_bit_depth(png, pinfo);
    png_uint_32 w = png_get_image_width(png, pinfo), h = png_get_image_height(png, pinfo);
    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color_type == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    int has_alpha = (color_type & PNG_COLOR_MASK_ALPHA) != 0;
    if (png_get_valid(png, pinfo, PNG_INFO_tRNS)) { png_set_tRNS_to_alpha(png); has_alpha = 1; }
    if (depth == 16) png_set_scale_16(png);
    if (!(color_type & PNG_COLOR_MASK_COLOR)) png_set_gray_to_rgb(png);
    if (!has_alpha) png_set_filler(png, 0xFF, PNG_FILLER_AFTER);
    png_set_interlace_handling(png);
    png_read_update_info(png, pinfo);
    if (png_get_rowbytes(png, pinfo) != (size_t)w * 4) png_error(png, "unexpected row layout after conversion");
    pixels = malloc((size_t)w * h * 4);
    rows = malloc(sizeof(png_bytep) * h);
    if (!pixels || !rows) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < h; y++) rows[y] = pixels + (size_t)y * w * 4;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &pinfo, NULL);
    free(rows);
    *rgba = pixels;
    *width = (int)w;
    *height = (int)h;
    return 0;
}

// MARK: - JPEG

typedef struct {
    struct jpeg_error_mgr manager;
    jmp_buf jump;
    int truncated;
} jpeg_context;

static void jpeg_fail(j_common_ptr info) {
    jpeg_context *context = (jpeg_context *)info->err;
    longjmp(context->jump, 1);
}

static void jpeg_message(j_common_ptr info, int level) {
    jpeg_context *context = (jpeg_context *)info->err;
    if (level < 0 && info->err->msg_code == JWRN_JPEG_EOF) context->truncated = 1;
}

static void jpeg_describe(j_common_ptr info, char *error, size_t error_size) {
    char message[JMSG_LENGTH_MAX];
    info->err->format_message(info, message);
    set_error(error, error_size, message);
}

// Reads the header into `info`, then, when `out` is given, decodes the pixels as `channels` into it (`out_size` must
// be their exact count). One function for both, so that the error handling stands once.
static int jpeg_read(const uint8_t *data, size_t size, dc_image_info *info, int channels, uint8_t *out, size_t out_size,
                     char *error, size_t error_size) {
    struct jpeg_decompress_struct decoder;
    jpeg_context context = {0};
    decoder.err = jpeg_std_error(&context.manager);
    context.manager.error_exit = jpeg_fail;
    context.manager.emit_message = jpeg_message;
    if (setjmp(context.jump)) {
        if (context.truncated) set_error(error, error_size, "the file ends early (a truncated JPEG)");
        else jpeg_describe((j_common_ptr)&decoder, error, error_size);
        jpeg_destroy_decompress(&decoder);
        return -1;
    }
    jpeg_create_decompress(&decoder);
    jpeg_mem_src(&decoder, data, (unsigned long)size);
    jpeg_read_header(&decoder, TRUE);
    int status = 0;
    if (info) {
        info->kind = DC_IMAGE_JPEG;
        info->width = (int)decoder.image_width;
        info->height = (int)decoder.image_height;
        info->components = decoder.num_components == 1 ? 1 : 3;
    }
    if (out && (decoder.jpeg_color_space == JCS_CMYK || decoder.jpeg_color_space == JCS_YCCK)) {
        set_error(error, error_size, "a CMYK JPEG (save it as RGB or greyscale)");
        status = -1;
    } else if (out) {
        decoder.out_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
        jpeg_start_decompress(&decoder);
        size_t stride = (size_t)decoder.output_width * (size_t)decoder.output_components;
        if (decoder.output_components != channels || stride * decoder.output_height != out_size) {
            set_error(error, error_size, "its size differs from the one its header declared");
            status = -1;
        } else {
            while (decoder.output_scanline < decoder.output_height) {
                JSAMPROW row = out + (size_t)decoder.output_scanline * stride;
                jpeg_read_scanlines(&decoder, &row, 1);
            }
            jpeg_finish_decompress(&decoder);
        }
    }
    jpeg_destroy_decompress(&decoder);
    if (status == 0 && context.truncated) {
        set_error(error, error_size, "the file ends early (a truncated JPEG)");
        status = -1;
    }
    return status;
}

// MARK: - The door

int dc_image_header(const uint8_t *data, size_t size, dc_image_info *info, char *error, size_t error_size) {
    if (is_png(data, size)) return png_header(data, size, info, error, error_size);
    if (is_jpeg(data, size)) return jpeg_read(data, size, info, 0, NULL, 0, error, error_size);
    set_error(error, error_size, "not a PNG or JPEG file (its first bytes are neither signature)");
    return -1;
}

static int grey_content(const uint8_t *rgb, size_t pixels, size_t step) {
    for (size_t i = 0; i < pixels; i++, rgb += step)
        if (rgb[0] != rgb[1] || rgb[1] != rgb[2]) return 0;
    return 1;
}

static uint8_t luma(const uint8_t *rgb) {
    return (uint8_t)((299u * rgb[0] + 587u * rgb[1] + 114u * rgb[2] + 500u) / 1000u);
}

int dc_image_decode(const uint8_t *data, size_t size, int channels, uint8_t *out, size_t out_size, int *flags,
                    char *error, size_t error_size) {
    *flags = 0;
    if (channels != 1 && channels != 3) { set_error(error, error_size, "channels must be 1 or 3"); return -1; }
    if (is_jpeg(data, size)) {
        if (channels == 1) return jpeg_read(data, size, NULL, 1, out, out_size, error, error_size);
        if (jpeg_read(data, size, NULL, 3, out, out_size, error, error_size) != 0) return -1;
        if (grey_content(out, out_size / 3, 3)) *flags |= DC_IMAGE_GREY_CONTENT;
        return 0;
    }
    if (!is_png(data, size)) {
        set_error(error, error_size, "not a PNG or JPEG file (its first bytes are neither signature)");
        return -1;
    }
    uint8_t *rgba = NULL;
    int width = 0, height = 0;
    if (png_decode(data, size, &rgba, &width, &height, error, error_size) != 0) return -1;
    size_t count = (size_t)width * (size_t)height;
    if (count * (size_t)channels != out_size) {
        free(rgba);
        set_error(error, error_size, "its size differs from the one its header declared");
        return -1;
    }
    // Transparency onto white: value * alpha + 255 * (1 - alpha), rounded.
    for (size_t i = 0; i < count; i++) {
        uint8_t *p = rgba + 4 * i;
        unsigned a = p[3];
        if (a == 255) continue;
        *flags |= DC_IMAGE_HAD_ALPHA;
        for (int c = 0; c < 3; c++) p[c] = (uint8_t)((p[c] * a + 255u * (255u - a) + 127u) / 255u);
    }
    if (grey_content(rgba, count, 4)) *flags |= DC_IMAGE_GREY_CONTENT;
    for (size_t i = 0; i < count; i++) {
        const uint8_t *p = rgba + 4 * i;
        if (channels == 1) {
            out[i] = (*flags & DC_IMAGE_GREY_CONTENT) ? p[0] : luma(p);
        } else {
            out[3 * i] = p[0];
            out[3 * i + 1] = p[1];
            out[3 * i + 2] = p[2];
        }
    }
    free(rgba);
    return 0;
}

int dc_jpeg_encode(const uint8_t *pixels, int width, int height, int channels, int quality, uint8_t **out,
                   size_t *out_size, char *error, size_t error_size) {
    struct jpeg_compress_struct encoder;
    jpeg_context context = {0};
    unsigned char *volatile buffer = NULL;
    unsigned long length = 0;
    encoder.err = jpeg_std_error(&context.manager);
    context.manager.error_exit = jpeg_fail;
    if (setjmp(context.jump)) {
        jpeg_describe((j_common_ptr)&encoder, error, error_size);
        jpeg_destroy_compress(&encoder);
        free(buffer);
        return -1;
    }
    jpeg_create_compress(&encoder);
    unsigned char *target = NULL;
    jpeg_mem_dest(&encoder, &target, &length);
    encoder.image_width = (JDIMENSION)width;
    encoder.image_height = (JDIMENSION)height;
    encoder.input_components = channels;
    encoder.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&encoder);
    jpeg_set_quality(&encoder, quality, TRUE);
    jpeg_start_compress(&encoder, TRUE);
    while (encoder.next_scanline < encoder.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)encoder.next_scanline * (size_t)width * (size_t)channels);
        jpeg_write_scanlines(&encoder, &row, 1);
    }
    jpeg_finish_compress(&encoder);
    buffer = target;
    jpeg_destroy_compress(&encoder);
    *out = buffer;
    *out_size = (size_t)length;
    return 0;
}

void dc_image_free(void *buffer) { free(buffer); }
