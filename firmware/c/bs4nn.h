/*
 * bs4nn.h - portable integer inference of a binarized spiking network (BS4NN), and of the B1
 * time-to-first-spike family (model->family == BS4NN_FAMILY_B1, below).
 *
 * Runs the exported sign bits on a microcontroller: bit-packed weights, popcount, integers
 * only, no floats, no malloc.  Same time semantics as the golden model (sim/semantics.py):
 *
 *   - steps t = 0 .. tmax-1; pixel I spikes at floor((imax - I) * tmax / imax), a time >= tmax
 *     means "never" (black pixels never spike);
 *   - counters add +1 / -1 per presynaptic spike; at step t all spikes of step t are integrated
 *     layer by layer (a neuron crossing at t spikes at t and the next layer integrates it at t);
 *   - a neuron fires once, at the first step with count >= threshold_count, and is never reset;
 *     a neuron that never fires has spike time tmax;
 *   - decision: earliest output spike, ties to the lowest index; if no output fired, the largest
 *     final counter, ties to the lowest index, decision time tmax.
 *
 * Weights use the bit-model folder's layer{L}.bin format (export/bitmodel.py pack_rows): row j
 * is output neuron j's fan-in, input 0 first, most significant bit first, each row padded with 0
 * bits to a whole byte; bit 1 = +1, bit 0 = -1.
 *
 * B1 (sim/b1.py; family BS4NN_FAMILY_B1): the same input coding, an input spike at step k has the
 * value x = tmax - k (0: no spike).  Layer l's potential V_j = bias_j + sum_i w_ji x_i (integer
 * weights of weight_bits bits: 1 bit = +1/-1 as above, b bits = two's-complement fields, MSB first,
 * rows padded to whole bytes: export/b1bits.py pack_weight_rows).  A hidden layer (ramp, window)
 * passes x_j = clip(floor(V_j / ramp), 0, window) on, its spike step window - x_j; the output
 * layer's potentials are the scores and the decision their argmax, ties to the lowest index.
 * The result: counts = every potential (hidden) and score (output); spike_times = the hidden spike
 * steps, and the decision latency tmax + sum of the windows where a neuron does not spike (the
 * outputs never do); decision_time = that latency (the B1 core reports the same).  Potentials
 * must fit 32 bits (the exporter's potential_bits <= 32).
 *
 * Limits: fan_in, fan_out, tmax <= 65535 (16-bit times and indices), at most BS4NN_MAX_LAYERS;
 * B1: weight_bits 1..8, windows and the decision latency <= 65535.
 */
#ifndef BS4NN_H
#define BS4NN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BS4NN_MAX_LAYERS 8
#define BS4NN_MAX_DIM 65535u

/* Return codes. */
#define BS4NN_OK 0
#define BS4NN_EMODEL (-1) /* inconsistent model: sizes, thresholds, layer count */
#define BS4NN_EINPUT (-2) /* a pixel above imax */

/* Network families (bs4nn_model.family). */
#define BS4NN_FAMILY_BS4NN 0u
#define BS4NN_FAMILY_B1 1u
#define BS4NN_B1_MAX_WEIGHT_BITS 8u

typedef struct {
    uint32_t fan_in;
    uint32_t fan_out;
    int32_t threshold_count; /* BS4NN: >= 1; B1: unused (0) */
    const uint8_t *bits;     /* fan_out rows of BS4NN_WEIGHT_ROW_BYTES(fan_in, weight_bits) bytes */
    uint32_t weight_bits;    /* B1: 1..8; BS4NN: 1 */
    const int32_t *bias;     /* B1: fan_out biases; BS4NN: NULL */
    uint32_t ramp;           /* B1 hidden layers: >= 1; the output layer and BS4NN: 0 */
    uint32_t window;         /* B1 hidden layers: >= 1; the output layer and BS4NN: 0 */
} bs4nn_layer;

typedef struct {
    uint32_t n_layers;
    uint32_t tmax;
    uint32_t imax;
    const bs4nn_layer *layers;
    uint32_t family; /* BS4NN_FAMILY_BS4NN or BS4NN_FAMILY_B1 */
} bs4nn_model;

/* What one inference returns.  The caller owns the two arrays; each holds the sum of all
 * layers' fan_out entries, layer l starting after the fan_out of layers 0 .. l-1. */
typedef struct {
    int32_t decision;       /* class (index of the output neuron) */
    uint32_t decision_time; /* first output spike time; tmax if no output fired */
    uint16_t *spike_times;  /* per neuron, tmax = never fired (or not yet, in early-exit mode) */
    int32_t *counts;        /* per neuron: counter after the last simulated step */
} bs4nn_result;

#define BS4NN_ROW_BYTES(fan_in) (((fan_in) + 7u) / 8u)
#define BS4NN_WEIGHT_ROW_BYTES(fan_in, weight_bits) (((fan_in) * (weight_bits) + 7u) / 8u)

/* An upper bound of bs4nn_workspace_bytes() from the sizes a model header defines, for a static
 * buffer on a microcontroller: e.g. BS4NN_WORKSPACE_BOUND(BS4NN_N_LAYERS, BS4NN_MAX_LAYER_SIZE, BS4NN_TMAX).
 * Either family: BS4NN's needs n_layers terms, B1's (two uint16 arrays of the widest layer) one more. */
#define BS4NN_WORKSPACE_BOUND(n_layers, max_layer_size, tmax) \
    (2u * ((tmax) + 1u) + ((n_layers) + 1u) * (2u * (max_layer_size) + BS4NN_ROW_BYTES(max_layer_size)))

/* 0 if the model is consistent (layer sizes chain, thresholds >= 1 or B1 biases, ramps, windows,
 * weight bits; limits), else BS4NN_EMODEL. */
int bs4nn_check_model(const bs4nn_model *model);

/* Bytes of scratch memory bs4nn_infer needs for this model (2-byte aligned). */
size_t bs4nn_workspace_bytes(const bs4nn_model *model);

/* Total neurons of all layers: the length of result->spike_times and result->counts. */
uint32_t bs4nn_total_neurons(const bs4nn_model *model);

/* Time-to-first-spike code of n pixels: times[i] = (imax - pixels[i]) * tmax / imax.
 * Returns BS4NN_EINPUT if a pixel exceeds imax. */
int bs4nn_encode_pixels(const uint8_t *pixels, uint32_t n, uint32_t tmax, uint32_t imax, uint16_t *times);

/* Run one image given its input spike times (n_in = layers[0].fan_in values, >= tmax = none).
 * early_exit != 0 stops after the first step in which an output neuron fires (the decision is
 * the same; later spike times stay tmax and counters are those of that step); a B1 network
 * ignores it (its decision needs every input).
 * workspace: bs4nn_workspace_bytes(model) bytes, 2-byte aligned. */
int bs4nn_infer(const bs4nn_model *model, const uint16_t *input_times, int early_exit, void *workspace,
                bs4nn_result *result);

#ifdef __cplusplus
}
#endif

#endif /* BS4NN_H */
