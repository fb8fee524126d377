/*
 * host_main.c - a host program around bs4nn_infer, for tests and benchmarks on a PC.
 *
 *   bs4nn_cli [--times] [--early-exit] TMAX IMAX N_LAYERS SIZE_0 .. SIZE_N THR_0 .. THR_N-1
 *             LAYER_0.bin .. LAYER_N-1.bin  < inputs  > results
 *
 * The model is given the way a bit-model folder holds it: sizes and threshold counts (from
 * manifest.json) and the layer{L}.bin sign files.  Inputs on stdin, one image after the other:
 * SIZE_0 pixels as bytes (default; coded on the "board" with bs4nn_encode_pixels), or with
 * --times SIZE_0 spike times as uint16 little-endian.  For each image, stdout gets int32
 * little-endian values: decision, decision_time, the spike times of every neuron (layer 0 first),
 * then the final counters of every neuron.  Exit status 0 on success, 2 on bad arguments or files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bs4nn.h"

#define EXIT_BAD_USAGE 2
#define DECIMAL 10

static void die(const char *message, const char *detail) {
    fprintf(stderr, "bs4nn_cli: error: %s%s\n", message, detail ? detail : "");
    exit(EXIT_BAD_USAGE);
}

static unsigned long parse_number(const char *text) {
    char *end = NULL;
    unsigned long value = strtoul(text, &end, DECIMAL);
    if (end == text || *end != '\0') {
        die("not a number: ", text);
    }
    return value;
}

static uint8_t *read_file(const char *path, size_t expected) {
    FILE *file = fopen(path, "rb");
    uint8_t *data;
    size_t got;
    int extra;
    if (file == NULL) {
        die("cannot open ", path);
    }
    data = (uint8_t *)malloc(expected ? expected : 1u);
    if (data == NULL) {
        die("out of memory reading ", path);
    }
    got = fread(data, 1, expected, file);
    extra = fgetc(file);
    fclose(file);
    if (got != expected || extra != EOF) {
        die("wrong size (not the layer's fan_out x row bytes): ", path);
    }
    return data;
}

static void write_int32(int32_t value) {
    uint32_t bits = (uint32_t)value;
    unsigned char bytes[4] = {(unsigned char)(bits & 0xFFu), (unsigned char)((bits >> 8) & 0xFFu),
                              (unsigned char)((bits >> 16) & 0xFFu), (unsigned char)((bits >> 24) & 0xFFu)};
    fwrite(bytes, 1, sizeof(bytes), stdout);
}

int main(int argc, char **argv) {
    int arg = 1, use_times = 0, early_exit = 0;
    bs4nn_layer layers[BS4NN_MAX_LAYERS];
    bs4nn_model model;
    uint32_t sizes[BS4NN_MAX_LAYERS + 1];
    uint32_t l, i, n_layers, total;
    uint8_t *pixels, *raw, *workspace;
    uint16_t *times;
    bs4nn_result result;

    while (arg < argc && strncmp(argv[arg], "--", 2) == 0) {
        if (strcmp(argv[arg], "--times") == 0) {
            use_times = 1;
        } else if (strcmp(argv[arg], "--early-exit") == 0) {
            early_exit = 1;
        } else {
            die("unknown option ", argv[arg]);
        }
        arg++;
    }
    if (argc - arg < 3) {
        die("usage: bs4nn_cli [--times] [--early-exit] TMAX IMAX N_LAYERS SIZES.. THRESHOLDS.. LAYER.bin..", NULL);
    }
    model.tmax = (uint32_t)parse_number(argv[arg++]);
    model.imax = (uint32_t)parse_number(argv[arg++]);
    n_layers = (uint32_t)parse_number(argv[arg++]);
    if (n_layers == 0 || n_layers > BS4NN_MAX_LAYERS) {
        die("N_LAYERS out of range", NULL);
    }
    if ((uint32_t)(argc - arg) != (n_layers + 1u) + n_layers + n_layers) {
        die("expected N_LAYERS+1 sizes, N_LAYERS thresholds and N_LAYERS .bin files", NULL);
    }
    for (l = 0; l <= n_layers; l++) {
        sizes[l] = (uint32_t)parse_number(argv[arg++]);
    }
    for (l = 0; l < n_layers; l++) {
        layers[l].fan_in = sizes[l];
        layers[l].fan_out = sizes[l + 1u];
        layers[l].threshold_count = (int32_t)parse_number(argv[arg++]);
    }
    for (l = 0; l < n_layers; l++) {
        layers[l].bits = read_file(argv[arg++], (size_t)sizes[l + 1u] * BS4NN_ROW_BYTES(sizes[l]));
    }
    model.n_layers = n_layers;
    model.layers = layers;
    if (bs4nn_check_model(&model) != BS4NN_OK) {
        die("inconsistent model (sizes, thresholds >= 1, limits)", NULL);
    }

    total = bs4nn_total_neurons(&model);
    workspace = (uint8_t *)malloc(bs4nn_workspace_bytes(&model));
    times = (uint16_t *)malloc(sizes[0] * sizeof(uint16_t));
    raw = (uint8_t *)malloc(sizes[0] * sizeof(uint16_t));
    pixels = raw;
    result.spike_times = (uint16_t *)malloc(total * sizeof(uint16_t));
    result.counts = (int32_t *)malloc(total * sizeof(int32_t));
    if (!workspace || !times || !raw || !result.spike_times || !result.counts) {
        die("out of memory", NULL);
    }
    for (;;) {
        size_t want = use_times ? sizes[0] * 2u : sizes[0];
        size_t got = fread(raw, 1, want, stdin);
        if (got == 0) {
            break;
        }
        if (got != want) {
            die("truncated input (not a whole image)", NULL);
        }
        if (use_times) {
            for (i = 0; i < sizes[0]; i++) {
                times[i] = (uint16_t)(raw[2u * i] | (raw[2u * i + 1u] << 8));
            }
        } else if (bs4nn_encode_pixels(pixels, sizes[0], model.tmax, model.imax, times) != BS4NN_OK) {
            die("pixel above imax", NULL);
        }
        if (bs4nn_infer(&model, times, early_exit, workspace, &result) != BS4NN_OK) {
            die("inference failed", NULL);
        }
        write_int32(result.decision);
        write_int32((int32_t)result.decision_time);
        for (i = 0; i < total; i++) {
            write_int32(result.spike_times[i]);
        }
        for (i = 0; i < total; i++) {
            write_int32(result.counts[i]);
        }
    }
    fflush(stdout);
    return 0;
}
