/*
 * example_main.c - the C routine as a microcontroller would use it: the model compiled in from
 * the exporter's bs4nn_model.h, static buffers only (no malloc), integers only.
 *
 *   make example MODEL_DIR=<bit-model folder holding bs4nn_model.h>
 *   ./build/bs4nn_example < images.u8 > answers.txt
 *
 * Either family (BS4NN or B1: the header says which).  Reads BS4NN_N_INPUTS pixel bytes per
 * image from stdin (a UART on a real board) and prints, per image, "decision decision_time" and
 * the output spike times (B1: all at the decision latency).
 */
#include <stdio.h>

#include "bs4nn.h"
/* after bs4nn.h: the header then also defines bs4nn_exported_model */
#include "bs4nn_model.h"

#define WORKSPACE_BYTES BS4NN_WORKSPACE_BOUND(BS4NN_N_LAYERS, BS4NN_MAX_LAYER_SIZE, BS4NN_TMAX)
#define MAX_NEURONS (BS4NN_N_LAYERS * BS4NN_MAX_LAYER_SIZE)

static uint16_t workspace[(WORKSPACE_BYTES + 1u) / 2u];
static uint16_t spike_times[MAX_NEURONS];
static int32_t counts[MAX_NEURONS];
static uint8_t pixels[BS4NN_N_INPUTS];
static uint16_t input_times[BS4NN_N_INPUTS];

int main(void) {
    const bs4nn_model *model = &bs4nn_exported_model;
    bs4nn_result result;
    uint32_t j, first_output;
    if (bs4nn_check_model(model) != BS4NN_OK || bs4nn_workspace_bytes(model) > sizeof(workspace)) {
        fprintf(stderr, "bs4nn_example: error: model does not fit the static buffers\n");
        return 2;
    }
    result.spike_times = spike_times;
    result.counts = counts;
    first_output = bs4nn_total_neurons(model) - BS4NN_N_OUTPUTS;
    while (fread(pixels, 1, sizeof(pixels), stdin) == sizeof(pixels)) {
        if (bs4nn_encode_pixels(pixels, BS4NN_N_INPUTS, BS4NN_TMAX, BS4NN_IMAX, input_times) != BS4NN_OK ||
            bs4nn_infer(model, input_times, 0, workspace, &result) != BS4NN_OK) {
            fprintf(stderr, "bs4nn_example: error: bad image\n");
            return 2;
        }
        printf("%ld %lu", (long)result.decision, (unsigned long)result.decision_time);
        for (j = 0; j < BS4NN_N_OUTPUTS; j++) {
            printf(" %u", (unsigned)spike_times[first_output + j]);
        }
        printf("\n");
    }
    return 0;
}
