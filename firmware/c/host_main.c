/*
 * host_main.c - a host program around bs4nn_infer, for tests and benchmarks on a PC.
 *
 *   bs4nn_cli [--times] [--early-exit] TMAX IMAX N_LAYERS SIZE_0 .. SIZE_N THR_0 .. THR_N-1
 *             LAYER_0.bin .. LAYER_N-1.bin  < inputs  > results
 *   bs4nn_cli --b1 [--times] TMAX IMAX N_LAYERS SIZE_0 .. SIZE_N BITS_0 .. BITS_N-1
 *             RAMP_0 .. RAMP_N-2 WINDOW_0 .. WINDOW_N-2 LAYER_0.bin .. LAYER_N-1.bin
 *             BIAS_0.bin .. BIAS_N-1.bin  < inputs  > results
 *
 * The model is given the way a bit-model folder holds it: sizes and threshold counts (B1: weight
 * bits, the hidden layers' ramps and windows) from manifest.json, and the layer{L}.bin weight
 * files; a B1 layer's biases as int32 little-endian files (the manifest's bias lists).  Inputs on stdin, one image after the other:
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
#define INT32_BYTES 4u

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

/* A layer's biases from an int32 little-endian file of fan_out values. */
static int32_t *read_biases(const char *path, uint32_t fan_out) {
    uint8_t *raw = read_file(path, (size_t)fan_out * INT32_BYTES);
    int32_t *bias = (int32_t *)malloc((size_t)fan_out * sizeof(int32_t));
    uint32_t j;
    if (bias == NULL) {
        die("out of memory reading ", path);
    }
    for (j = 0; j < fan_out; j++) {
        const uint8_t *b = raw + (size_t)j * INT32_BYTES;
        bias[j] = (int32_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24);
    }
    free(raw);
    return bias;
}

/* The model from the arguments after the options (see the top of this file); dies on a bad one. */
static void parse_model(int argc, char **argv, int arg, uint32_t family, bs4nn_model *model, bs4nn_layer *layers) {
    uint32_t sizes[BS4NN_MAX_LAYERS + 1];
    uint32_t l, n_layers, hidden, files;
    if (argc - arg < 3) {
        die("usage: bs4nn_cli [--b1] [--times] [--early-exit] TMAX IMAX N_LAYERS SIZES.. (see host_main.c)", NULL);
    }
    model->tmax = (uint32_t)parse_number(argv[arg++]);
    model->imax = (uint32_t)parse_number(argv[arg++]);
    n_layers = (uint32_t)parse_number(argv[arg++]);
    if (n_layers == 0 || n_layers > BS4NN_MAX_LAYERS) {
        die("N_LAYERS out of range", NULL);
    }
    hidden = family == BS4NN_FAMILY_B1 ? n_layers - 1u : 0u;
    files = family == BS4NN_FAMILY_B1 ? 2u * n_layers : n_layers; /* weights (B1: and biases) */
    if ((uint32_t)(argc - arg) != (n_layers + 1u) + n_layers + 2u * hidden + files) {
        die(family == BS4NN_FAMILY_B1 ? "expected N_LAYERS+1 sizes, N_LAYERS weight bits, N_LAYERS-1 ramps and "
                                        "windows, N_LAYERS .bin weight files and N_LAYERS .bin bias files"
                                      : "expected N_LAYERS+1 sizes, N_LAYERS thresholds and N_LAYERS .bin files",
            NULL);
    }
    for (l = 0; l <= n_layers; l++) {
        sizes[l] = (uint32_t)parse_number(argv[arg++]);
    }
    memset(layers, 0, n_layers * sizeof(bs4nn_layer));
    for (l = 0; l < n_layers; l++) {
        layers[l].fan_in = sizes[l];
        layers[l].fan_out = sizes[l + 1u];
        layers[l].weight_bits = 1u;
        if (family == BS4NN_FAMILY_B1) {
            layers[l].weight_bits = (uint32_t)parse_number(argv[arg++]);
        } else {
            layers[l].threshold_count = (int32_t)parse_number(argv[arg++]);
        }
    }
    for (l = 0; l < hidden; l++) {
        layers[l].ramp = (uint32_t)parse_number(argv[arg++]);
    }
    for (l = 0; l < hidden; l++) {
        layers[l].window = (uint32_t)parse_number(argv[arg++]);
    }
    for (l = 0; l < n_layers; l++) {
        if (layers[l].weight_bits == 0 || layers[l].weight_bits > BS4NN_B1_MAX_WEIGHT_BITS) {
            die("weight bits out of range", NULL);
        }
        layers[l].bits = read_file(argv[arg++], (size_t)sizes[l + 1u] *
                                                    BS4NN_WEIGHT_ROW_BYTES(sizes[l], layers[l].weight_bits));
    }
    for (l = 0; l < n_layers && family == BS4NN_FAMILY_B1; l++) {
        layers[l].bias = read_biases(argv[arg++], sizes[l + 1u]);
    }
    model->n_layers = n_layers;
    model->layers = layers;
    model->family = family;
    if (bs4nn_check_model(model) != BS4NN_OK) {
        die("inconsistent model (sizes, thresholds >= 1 or B1 ramps and windows, limits)", NULL);
    }
}

int main(int argc, char **argv) {
    int arg = 1, use_times = 0, early_exit = 0;
    uint32_t family = BS4NN_FAMILY_BS4NN;
    bs4nn_layer layers[BS4NN_MAX_LAYERS];
    bs4nn_model model;
    uint32_t i, n_in, total;
    uint8_t *pixels, *raw, *workspace;
    uint16_t *times;
    bs4nn_result result;

    while (arg < argc && strncmp(argv[arg], "--", 2) == 0) {
        if (strcmp(argv[arg], "--times") == 0) {
            use_times = 1;
        } else if (strcmp(argv[arg], "--early-exit") == 0) {
            early_exit = 1;
        } else if (strcmp(argv[arg], "--b1") == 0) {
            family = BS4NN_FAMILY_B1;
        } else {
            die("unknown option ", argv[arg]);
        }
        arg++;
    }
    parse_model(argc, argv, arg, family, &model, layers);
    n_in = layers[0].fan_in;
    total = bs4nn_total_neurons(&model);
    workspace = (uint8_t *)malloc(bs4nn_workspace_bytes(&model));
    times = (uint16_t *)malloc(n_in * sizeof(uint16_t));
    raw = (uint8_t *)malloc(n_in * sizeof(uint16_t));
    pixels = raw;
    result.spike_times = (uint16_t *)malloc(total * sizeof(uint16_t));
    result.counts = (int32_t *)malloc(total * sizeof(int32_t));
    if (!workspace || !times || !raw || !result.spike_times || !result.counts) {
        die("out of memory", NULL);
    }
    for (;;) {
        size_t want = use_times ? n_in * 2u : n_in;
        size_t got = fread(raw, 1, want, stdin);
        if (got == 0) {
            break;
        }
        if (got != want) {
            die("truncated input (not a whole image)", NULL);
        }
        if (use_times) {
            for (i = 0; i < n_in; i++) {
                times[i] = (uint16_t)(raw[2u * i] | (raw[2u * i + 1u] << 8));
            }
        } else if (bs4nn_encode_pixels(pixels, n_in, model.tmax, model.imax, times) != BS4NN_OK) {
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
