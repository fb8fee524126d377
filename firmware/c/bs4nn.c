/*
 * bs4nn.c - portable integer inference of a binarized spiking network.  See bs4nn.h.
 * bs4nn_infer dispatches on the model's family: infer_bs4nn (below) or infer_b1 (the closed form of
 * a B1 network, after it).
 *
 * Event-driven over time steps: input spikes are bucketed by time (counting sort), and only
 * steps that carry spikes are simulated.  At a step, each layer receives the set of its
 * presynaptic neurons that spiked at this step (n_new of them) and every counter changes by
 * (+1 per new spike on a +1 synapse, -1 per new spike on a -1 synapse)
 *     delta_j = 2 * popcount(row_j AND new_spikes) - n_new.
 * Two ways to compute popcount(row_j AND new_spikes), same result:
 *   - dense: AND the packed row with a packed spike mask, 32 bits at a time (many spikes);
 *   - sparse: look up the n_new sign bits directly (few spikes: the usual case after step 0).
 */
#include "bs4nn.h"

#include <string.h>

#define BITS_PER_BYTE 8u
#define BYTES_PER_WORD 4u

static uint32_t popcount32(uint32_t x) {
#if defined(__GNUC__) || defined(__clang__)
    return (uint32_t)__builtin_popcount(x);
#else
    x = x - ((x >> 1) & 0x55555555u);
    x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
    x = (x + (x >> 4)) & 0x0F0F0F0Fu;
    return (x * 0x01010101u) >> 24;
#endif
}

/* popcount(row AND mask) over n_bytes bytes.  AND and popcount do not depend on byte order,
 * so 4-byte words are loaded with memcpy whatever the machine's endianness or alignment. */
static uint32_t popcount_and(const uint8_t *row, const uint8_t *mask, uint32_t n_bytes) {
    uint32_t total = 0;
    uint32_t i = 0;
    for (; i + BYTES_PER_WORD <= n_bytes; i += BYTES_PER_WORD) {
        uint32_t a, b;
        memcpy(&a, row + i, BYTES_PER_WORD);
        memcpy(&b, mask + i, BYTES_PER_WORD);
        total += popcount32(a & b);
    }
    for (; i < n_bytes; i++) {
        total += popcount32((uint32_t)(row[i] & mask[i]));
    }
    return total;
}

/* The sign bit of input `index` in a packed row (MSB first): 1 = +1, 0 = -1. */
static uint32_t sign_bit(const uint8_t *row, uint32_t index) {
    return (uint32_t)(row[index / BITS_PER_BYTE] >> (BITS_PER_BYTE - 1u - index % BITS_PER_BYTE)) & 1u;
}

static void set_bit(uint8_t *mask, uint32_t index) {
    mask[index / BITS_PER_BYTE] |= (uint8_t)(1u << (BITS_PER_BYTE - 1u - index % BITS_PER_BYTE));
}

/* The family's own fields of layer l: BS4NN a threshold; B1 weight bits, biases, and a ramp and
 * window exactly on the hidden layers.  Returns 1 if they are consistent. */
static int family_fields_ok(const bs4nn_model *model, uint32_t l) {
    const bs4nn_layer *layer = &model->layers[l];
    const int hidden = l + 1u < model->n_layers;
    if (model->family == BS4NN_FAMILY_BS4NN) {
        return layer->threshold_count >= 1 && layer->weight_bits == 1u;
    }
    if (model->family != BS4NN_FAMILY_B1 || layer->bias == NULL || layer->weight_bits == 0 ||
        layer->weight_bits > BS4NN_B1_MAX_WEIGHT_BITS) {
        return 0;
    }
    if (!hidden) {
        return layer->ramp == 0 && layer->window == 0;
    }
    return layer->ramp >= 1u && layer->window >= 1u && layer->window <= BS4NN_MAX_DIM;
}

/* B1: tmax plus every hidden window, the step of the decision. */
static uint32_t b1_latency(const bs4nn_model *model) {
    uint32_t l, latency = model->tmax;
    for (l = 0; l + 1u < model->n_layers; l++) {
        latency += model->layers[l].window;
    }
    return latency;
}

int bs4nn_check_model(const bs4nn_model *model) {
    uint32_t l;
    if (model == NULL || model->layers == NULL || model->n_layers == 0 || model->n_layers > BS4NN_MAX_LAYERS) {
        return BS4NN_EMODEL;
    }
    if (model->tmax == 0 || model->tmax > BS4NN_MAX_DIM || model->imax == 0 || model->imax > UINT8_MAX) {
        return BS4NN_EMODEL;
    }
    for (l = 0; l < model->n_layers; l++) {
        const bs4nn_layer *layer = &model->layers[l];
        if (layer->fan_in == 0 || layer->fan_in > BS4NN_MAX_DIM || layer->fan_out == 0 ||
            layer->fan_out > BS4NN_MAX_DIM || layer->bits == NULL || !family_fields_ok(model, l)) {
            return BS4NN_EMODEL;
        }
        if (l > 0 && layer->fan_in != model->layers[l - 1].fan_out) {
            return BS4NN_EMODEL;
        }
    }
    if (model->family == BS4NN_FAMILY_B1 && b1_latency(model) > BS4NN_MAX_DIM) {
        return BS4NN_EMODEL;
    }
    return BS4NN_OK;
}

uint32_t bs4nn_total_neurons(const bs4nn_model *model) {
    uint32_t l, total = 0;
    for (l = 0; l < model->n_layers; l++) {
        total += model->layers[l].fan_out;
    }
    return total;
}

/* Workspace layout (uint16 arrays first, so 2-byte alignment suffices):
 *   bucket_start[tmax + 1]   first index in `order` of each time step's input spikes
 *   order[n_in]              input indices sorted by spike time
 *   lists[fan_in of layers 1..]   per layer >= 1: indices of this step's new presynaptic spikes
 *   masks[row bytes of every layer's fan_in]   per layer: packed mask of this step's new spikes */
size_t bs4nn_workspace_bytes(const bs4nn_model *model) {
    uint32_t l;
    size_t halfwords;
    if (model->family == BS4NN_FAMILY_B1) { /* B1: the active inputs of a layer, indices and values */
        uint32_t widest = 0;
        for (l = 0; l < model->n_layers; l++) {
            widest = model->layers[l].fan_in > widest ? model->layers[l].fan_in : widest;
        }
        return 2u * (size_t)widest * sizeof(uint16_t);
    }
    halfwords = (size_t)model->tmax + 1u + model->layers[0].fan_in;
    size_t mask_bytes = 0;
    for (l = 0; l < model->n_layers; l++) {
        if (l > 0) {
            halfwords += model->layers[l].fan_in;
        }
        mask_bytes += BS4NN_ROW_BYTES(model->layers[l].fan_in);
    }
    return halfwords * sizeof(uint16_t) + mask_bytes;
}

int bs4nn_encode_pixels(const uint8_t *pixels, uint32_t n, uint32_t tmax, uint32_t imax, uint16_t *times) {
    uint32_t i;
    for (i = 0; i < n; i++) {
        if (pixels[i] > imax) {
            return BS4NN_EINPUT;
        }
        times[i] = (uint16_t)(((imax - pixels[i]) * tmax) / imax);
    }
    return BS4NN_OK;
}

static int infer_bs4nn(const bs4nn_model *model, const uint16_t *input_times, int early_exit, void *workspace,
                       bs4nn_result *result) {
    const uint32_t tmax = model->tmax;
    const uint32_t n_layers = model->n_layers;
    const uint32_t n_in = model->layers[0].fan_in;
    uint16_t *bucket_start = (uint16_t *)workspace;
    uint16_t *order = bucket_start + tmax + 1u;
    uint16_t *lists[BS4NN_MAX_LAYERS];
    uint8_t *masks[BS4NN_MAX_LAYERS];
    uint32_t offsets[BS4NN_MAX_LAYERS];
    uint32_t l, i, t, total = 0;
    uint16_t *next_list;
    uint8_t *next_byte;
    const uint32_t out_layer = n_layers - 1u;
    int output_fired = 0;

    /* Carve the workspace. */
    lists[0] = order;
    next_list = order + n_in;
    for (l = 1; l < n_layers; l++) {
        lists[l] = next_list;
        next_list += model->layers[l].fan_in;
    }
    next_byte = (uint8_t *)next_list;
    for (l = 0; l < n_layers; l++) {
        masks[l] = next_byte;
        next_byte += BS4NN_ROW_BYTES(model->layers[l].fan_in);
        offsets[l] = total;
        total += model->layers[l].fan_out;
    }
    for (i = 0; i < total; i++) {
        result->spike_times[i] = (uint16_t)tmax;
        result->counts[i] = 0;
    }

    /* Counting sort of the input spikes by time (times >= tmax never spike): count per step,
     * inclusive prefix sums (= end of each step's bucket), then place inputs from the last one
     * backwards, which leaves bucket_start[t] = first index of step t, ascending within a step. */
    memset(bucket_start, 0, (tmax + 1u) * sizeof(uint16_t));
    for (i = 0; i < n_in; i++) {
        if (input_times[i] < tmax) {
            bucket_start[input_times[i]]++;
        }
    }
    for (t = 1; t < tmax; t++) {
        bucket_start[t] = (uint16_t)(bucket_start[t] + bucket_start[t - 1u]);
    }
    bucket_start[tmax] = bucket_start[tmax - 1u];
    for (i = n_in; i-- > 0;) {
        if (input_times[i] < tmax) {
            order[--bucket_start[input_times[i]]] = (uint16_t)i;
        }
    }

    for (t = 0; t < tmax; t++) {
        uint32_t n_new = (uint32_t)(bucket_start[t + 1u] - bucket_start[t]);
        const uint16_t *new_list = order + bucket_start[t];
        if (n_new == 0) {
            continue; /* no spike at this step: no counter changes, no neuron can cross */
        }
        for (l = 0; l < n_layers && n_new > 0; l++) {
            const bs4nn_layer *layer = &model->layers[l];
            const uint32_t row_bytes = BS4NN_ROW_BYTES(layer->fan_in);
            const uint32_t row_words = row_bytes / BYTES_PER_WORD;
            const int dense = n_new > row_words;
            uint16_t *spike_times = result->spike_times + offsets[l];
            int32_t *counts = result->counts + offsets[l];
            uint32_t n_next = 0;
            uint32_t j, k;
            uint16_t *next_spikes = (l + 1u < n_layers) ? lists[l + 1u] : NULL;
            if (dense) {
                memset(masks[l], 0, row_bytes);
                for (k = 0; k < n_new; k++) {
                    set_bit(masks[l], new_list[k]);
                }
            }
            for (j = 0; j < layer->fan_out; j++) {
                const uint8_t *row = layer->bits + (size_t)j * row_bytes;
                uint32_t positive = 0;
                if (dense) {
                    positive = popcount_and(row, masks[l], row_bytes);
                } else {
                    for (k = 0; k < n_new; k++) {
                        positive += sign_bit(row, new_list[k]);
                    }
                }
                counts[j] += 2 * (int32_t)positive - (int32_t)n_new;
                if (spike_times[j] == tmax && counts[j] >= layer->threshold_count) {
                    spike_times[j] = (uint16_t)t;
                    if (next_spikes != NULL) {
                        next_spikes[n_next] = (uint16_t)j;
                    }
                    n_next++;
                    if (l == out_layer) {
                        output_fired = 1;
                    }
                }
            }
            n_new = n_next;
            new_list = next_spikes;
        }
        if (early_exit && output_fired) {
            break;
        }
    }

    /* Decision: earliest output spike (lowest index on ties), else largest counter. */
    {
        const uint16_t *out_times = result->spike_times + offsets[out_layer];
        const int32_t *out_counts = result->counts + offsets[out_layer];
        const uint32_t n_out = model->layers[out_layer].fan_out;
        uint32_t best = 0, j;
        for (j = 1; j < n_out; j++) {
            if (out_times[j] < out_times[best]) {
                best = j;
            }
        }
        if (out_times[best] < tmax) {
            result->decision = (int32_t)best;
            result->decision_time = out_times[best];
        } else {
            best = 0;
            for (j = 1; j < n_out; j++) {
                if (out_counts[j] > out_counts[best]) {
                    best = j;
                }
            }
            result->decision = (int32_t)best;
            result->decision_time = tmax;
        }
    }
    return BS4NN_OK;
}

/* Weight of input i in a row of weight_bits-bit fields (MSB first): 1 bit = +1/-1, b bits = two's
 * complement.  A field spans at most two bytes; the second is read only when the field reaches it. */
static int32_t b1_weight(const uint8_t *row, uint32_t i, uint32_t weight_bits) {
    const uint32_t bit = i * weight_bits;
    const uint32_t shift = bit % BITS_PER_BYTE;
    uint32_t window, field;
    if (weight_bits == 1u) {
        return sign_bit(row, i) ? 1 : -1;
    }
    window = (uint32_t)row[bit / BITS_PER_BYTE] << BITS_PER_BYTE;
    if (shift + weight_bits > BITS_PER_BYTE) {
        window |= row[bit / BITS_PER_BYTE + 1u];
    }
    field = (window >> (2u * BITS_PER_BYTE - shift - weight_bits)) & ((1u << weight_bits) - 1u);
    return field >= (1u << (weight_bits - 1u)) ? (int32_t)field - (int32_t)(1u << weight_bits) : (int32_t)field;
}

/* One B1 layer: every neuron's potential V = bias + sum of w * x over the n active inputs. */
static void b1_potentials(const bs4nn_layer *layer, const uint16_t *active, const uint16_t *values, uint32_t n,
                          int32_t *potentials) {
    const uint32_t row_bytes = BS4NN_WEIGHT_ROW_BYTES(layer->fan_in, layer->weight_bits);
    uint32_t j, k;
    for (j = 0; j < layer->fan_out; j++) {
        const uint8_t *row = layer->bits + (size_t)j * row_bytes;
        int32_t potential = layer->bias[j];
        if (layer->weight_bits == 1u) { /* +x or -x: no multiply */
            for (k = 0; k < n; k++) {
                potential += sign_bit(row, active[k]) ? (int32_t)values[k] : -(int32_t)values[k];
            }
        } else {
            for (k = 0; k < n; k++) {
                potential += b1_weight(row, active[k], layer->weight_bits) * (int32_t)values[k];
            }
        }
        potentials[j] = potential;
    }
}

/* A B1 network in closed form (see bs4nn.h): layer by layer over the inputs that spiked, each with
 * its value; a hidden layer's x = clip(floor(V / ramp), 0, window) feeds the next. */
static int infer_b1(const bs4nn_model *model, const uint16_t *input_times, void *workspace, bs4nn_result *result) {
    const bs4nn_layer *out = &model->layers[model->n_layers - 1u];
    const uint32_t latency = b1_latency(model);
    uint16_t *active = (uint16_t *)workspace;
    uint16_t *values = active;
    uint32_t l, i, n = 0, offset = 0, widest = 0;
    for (l = 0; l < model->n_layers; l++) {
        widest = model->layers[l].fan_in > widest ? model->layers[l].fan_in : widest;
    }
    values = active + widest;
    for (i = 0; i < model->layers[0].fan_in; i++) {
        if (input_times[i] < model->tmax) {
            active[n] = (uint16_t)i;
            values[n++] = (uint16_t)(model->tmax - input_times[i]);
        }
    }
    for (l = 0; l < model->n_layers; l++) {
        const bs4nn_layer *layer = &model->layers[l];
        int32_t *potentials = result->counts + offset;
        uint16_t *times = result->spike_times + offset;
        uint32_t j;
        b1_potentials(layer, active, values, n, potentials);
        n = 0;
        for (j = 0; j < layer->fan_out; j++) {
            /* negative potentials give 0 either way, so C's truncating division is the floor here;
             * the output layer (ramp 0) never fires */
            uint32_t x = potentials[j] <= 0 || layer->ramp == 0 ? 0u : (uint32_t)potentials[j] / layer->ramp;
            x = x > layer->window ? layer->window : x;
            times[j] = (uint16_t)(x > 0 ? layer->window - x : latency);
            if (x > 0) {
                active[n] = (uint16_t)j;
                values[n++] = (uint16_t)x;
            }
        }
        offset += layer->fan_out;
    }
    {
        const int32_t *scores = result->counts + offset - out->fan_out;
        uint32_t best = 0, j;
        for (j = 1; j < out->fan_out; j++) {
            if (scores[j] > scores[best]) {
                best = j;
            }
        }
        result->decision = (int32_t)best;
        result->decision_time = latency;
    }
    return BS4NN_OK;
}

int bs4nn_infer(const bs4nn_model *model, const uint16_t *input_times, int early_exit, void *workspace,
                bs4nn_result *result) {
    if (bs4nn_check_model(model) != BS4NN_OK) {
        return BS4NN_EMODEL;
    }
    if (model->family == BS4NN_FAMILY_B1) {
        return infer_b1(model, input_times, workspace, result);
    }
    return infer_bs4nn(model, input_times, early_exit, workspace, result);
}
