"""Every file format the exporter writes, read back by readers written here, independently.

The readers below share no code with ``bs4nn.export``: they parse the text the way the target
tool documents it (``$readmemh``, Xilinx COE, Intel MIF, C) and undo the memory layout with
plain loops, so an error in the writer and the same error in a shared helper cannot cancel out.
Two images also go through the real tools: Icarus Verilog's ``$readmemh`` and gcc.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bs4nn.export.bitmodel import pack_rows, unpack_rows
from bs4nn.export.cheader import c_header
from bs4nn.export.layout import MAX_LANES, MemoryLayout, weight_memory_words
from bs4nn.export.memfiles import memory_images
from bs4nn.sim.golden import IntegerLayer, IntegerNetwork, random_network

FORMAT_EXAMPLES = 60
FIRMWARE_IMAGES = 300


def sign_matrices(max_out: int = 40, max_in: int = 70):
    """Random 0/1 matrices of any shape, non-multiples of 8 and of the lane count included."""
    shapes = st.tuples(st.integers(1, max_out), st.integers(1, max_in))
    return shapes.flatmap(lambda shape: arrays(np.uint8, shape, elements=st.integers(0, 1)))


# ---------------------------------------------------------------- independent readers


def read_readmemh(text: str) -> dict[int, int]:
    """``$readmemh`` semantics (IEEE 1364 17.2.9): hex words separated by white space,
    ``//`` and ``/* */`` comments, ``@addr`` (hex) moves the load address."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    memory, address = {}, 0
    for token in text.split():
        if token.startswith("@"):
            address = int(token[1:], 16)
            continue
        assert re.fullmatch(r"[0-9a-fA-F_]+", token), token
        memory[address] = int(token.replace("_", ""), 16)
        address += 1
    return memory


def read_coe(text: str) -> tuple[int, list[int]]:
    """Xilinx COE: ``;`` comments, ``memory_initialization_radix=R;``, then the vector, ``;``-ended."""
    lines = [line.split(";", 1)[0] if line.lstrip().startswith(";") else line for line in text.splitlines()]
    body = "\n".join(lines)
    radix = int(re.search(r"memory_initialization_radix\s*=\s*(\d+)\s*;", body).group(1))
    vector = re.search(r"memory_initialization_vector\s*=\s*(.*?);", body, flags=re.S).group(1)
    values = [int(item.strip(), radix) for item in re.split(r"[,\s]+", vector) if item.strip()]
    return radix, values


def read_mif(text: str) -> tuple[int, int, dict[int, int]]:
    """Intel MIF: ``--`` comments, WIDTH/DEPTH/radices, ``CONTENT BEGIN`` ``addr : data;`` ``END;``."""
    body = re.sub(r"--[^\n]*", "", text)
    width = int(re.search(r"WIDTH\s*=\s*(\d+)\s*;", body).group(1))
    depth = int(re.search(r"DEPTH\s*=\s*(\d+)\s*;", body).group(1))
    assert re.search(r"ADDRESS_RADIX\s*=\s*HEX\s*;", body) and re.search(r"DATA_RADIX\s*=\s*HEX\s*;", body)
    content = re.search(r"CONTENT\s+BEGIN(.*)END\s*;", body, flags=re.S).group(1)
    memory = {}
    for entry in content.split(";"):
        if entry.strip():
            address, value = entry.split(":")
            memory[int(address, 16)] = int(value, 16)
    return width, depth, memory


def signs_from_memory(words: list[int], fan_out: int, fan_in: int, lanes: int) -> np.ndarray:
    """Undo the documented layout with loops: word ``i*wpr + w``, bit ``k`` = neuron ``w*lanes + k``."""
    words_per_row = -(-fan_out // lanes)
    assert len(words) == fan_in * words_per_row
    signs = np.zeros((fan_out, fan_in), np.uint8)
    for i in range(fan_in):
        for w in range(words_per_row):
            word = words[i * words_per_row + w]
            assert word >> lanes == 0, "word wider than the lane count"
            for k in range(lanes):
                neuron = w * lanes + k
                bit = (word >> k) & 1
                if neuron < fan_out:
                    signs[neuron, i] = bit
                else:
                    assert bit == 0, "padding bits must be 0"
    return signs


def signs_from_bin(payload: bytes, fan_out: int, fan_in: int) -> np.ndarray:
    """The ``.bin`` rows: row j = neuron j, ceil(fan_in/8) bytes, input i = bit 7 - i%8 of byte i//8."""
    row_bytes = -(-fan_in // 8)
    assert len(payload) == fan_out * row_bytes
    signs = np.zeros((fan_out, fan_in), np.uint8)
    for j in range(fan_out):
        for i in range(fan_in):
            signs[j, i] = (payload[j * row_bytes + i // 8] >> (7 - i % 8)) & 1
        for pad in range(fan_in, row_bytes * 8):
            assert (payload[j * row_bytes + pad // 8] >> (7 - pad % 8)) & 1 == 0
    return signs


def read_c_header(text: str) -> tuple[dict[str, str], dict[str, list[int]]]:
    """``#define NAME VALUE`` lines and ``static const T name[...] ... = {a, b, ...};`` arrays."""
    defines = dict(re.findall(r"^#define (\w+) ([^\\\n]+)$", text, flags=re.M))
    arrays_ = {
        name: [int(value, 0) for value in re.split(r"[,\s]+", body) if value]
        for name, body in re.findall(r"static const \w+ (\w+)\[[^\]]*\][^=]*= \{([^}]*)\};", text)
        if not name.endswith("layer_bits")
    }
    return defines, arrays_


# ---------------------------------------------------------------- round trips


@settings(max_examples=200, deadline=None)
@given(sign_matrices())
def test_bin_rows_round_trip_any_shape(signs):
    payload = pack_rows(signs)
    assert np.array_equal(signs_from_bin(payload, *signs.shape), signs)
    assert np.array_equal(unpack_rows(payload, *signs.shape), signs)


@settings(max_examples=FORMAT_EXAMPLES, deadline=None)
@given(sign_matrices(), st.integers(1, MAX_LANES))
def test_memory_images_parse_back_to_the_signs(signs, lanes):
    fan_out, fan_in = signs.shape
    layout = MemoryLayout(fan_in, fan_out, lanes)
    images = {name.split(".")[1]: payload.decode("ascii") for name, payload in memory_images(signs, lanes, 3).items()}
    expected_words = [int(w) for w in weight_memory_words(signs, lanes)]
    digits = -(-lanes // 4)

    hex_words = read_readmemh(images["hex"])
    assert sorted(hex_words) == list(range(layout.depth))
    assert all(re.fullmatch(f"[0-9a-f]{{{digits}}}", line) for line in images["hex"].splitlines())
    words = [hex_words[a] for a in range(layout.depth)]
    assert words == expected_words
    assert np.array_equal(signs_from_memory(words, fan_out, fan_in, lanes), signs)

    mem_words = read_readmemh(images["mem"])
    assert [mem_words[a] for a in range(layout.depth)] == words and len(mem_words) == layout.depth

    radix, coe_words = read_coe(images["coe"])
    assert radix == 16 and coe_words == words

    width, depth, mif_words = read_mif(images["mif"])
    assert (width, depth) == (lanes, layout.depth)
    assert [mif_words[a] for a in range(depth)] == words and len(mif_words) == depth


@settings(max_examples=30, deadline=None)
@given(st.lists(sign_matrices(24, 30), min_size=1, max_size=3), st.integers(1, 300))
def test_c_header_parses_back(matrices, threshold):
    layers, fan_in = [], None
    for signs in matrices:  # chain the shapes: each layer's fan-in = previous fan-out
        signs = signs if fan_in is None else np.resize(signs, (signs.shape[0], fan_in))
        layers.append(IntegerLayer(signs, threshold))
        fan_in = signs.shape[0]
    network = IntegerNetwork(tuple(layers), tmax=200, imax=100)
    defines, arrays_ = read_c_header(c_header(network, "mnist"))
    assert int(defines["BS4NN_N_LAYERS"]) == len(layers)
    assert (int(defines["BS4NN_TMAX"]), int(defines["BS4NN_IMAX"])) == (200, 100)
    assert defines["BS4NN_DATASET"] == '"mnist"'
    assert arrays_["BS4NN_LAYER_SIZES"] == network.sizes
    assert arrays_["BS4NN_THRESHOLD_COUNTS"] == [threshold] * len(layers)
    for index, layer in enumerate(layers):
        assert int(defines[f"BS4NN_LAYER{index}_FAN_IN"]) == layer.fan_in
        assert int(defines[f"BS4NN_LAYER{index}_FAN_OUT"]) == layer.fan_out
        row_bytes = int(defines[f"BS4NN_LAYER{index}_ROW_BYTES"])
        assert arrays_["BS4NN_LAYER_ROW_BYTES"][index] == row_bytes == -(-layer.fan_in // 8)
        payload = bytes(arrays_[f"bs4nn_layer{index}_bits"])
        assert np.array_equal(signs_from_bin(payload, layer.fan_out, layer.fan_in), layer.signs)


# ---------------------------------------------------------------- the real tools


@pytest.mark.parametrize(("lanes", "suffix"), [(16, "hex"), (16, "mem"), (7, "hex"), (64, "mem")])
def test_icarus_readmemh_loads_the_image(tmp_path, lanes, suffix):
    iverilog, vvp = shutil.which("iverilog"), shutil.which("vvp")
    assert iverilog and vvp, "Icarus Verilog is a project requirement (apt install iverilog)"
    signs = random_network([21, 37, 5], [3, 2], seed=lanes).layers[0].signs
    layout = MemoryLayout(21, 37, lanes)
    image = tmp_path / f"layer0.{suffix}"
    image.write_bytes(memory_images(signs, lanes, 0)[f"layer0.{suffix}"])
    source = tmp_path / "readback.v"
    source.write_text(
        "module readback;\n"
        f"  reg [{lanes - 1}:0] mem [0:{layout.depth - 1}];\n"
        "  integer i;\n"
        "  initial begin\n"
        f'    $readmemh("{image}", mem);\n'
        f'    for (i = 0; i < {layout.depth}; i = i + 1) $display("%h", mem[i]);\n'
        "    $finish;\n"
        "  end\n"
        "endmodule\n"
    )
    subprocess.run([iverilog, "-o", str(tmp_path / "readback.vvp"), str(source)], check=True)
    run = subprocess.run([vvp, "-n", str(tmp_path / "readback.vvp")], check=True, capture_output=True, text=True)
    lines = [line for line in run.stdout.split() if re.fullmatch(r"[0-9a-fxzXZ]+", line)]
    words = [int(line, 16) for line in lines]  # an unloaded word prints as x and fails here
    assert np.array_equal(signs_from_memory(words, 37, 21, lanes), signs)


C_PROGRAM = r"""
#include <stdio.h>
#include "bs4nn_model.h"

int main(void) {
    printf("%d %d %d %d %d %d\n", BS4NN_N_LAYERS, BS4NN_TMAX, BS4NN_IMAX, BS4NN_N_INPUTS, BS4NN_N_OUTPUTS,
           BS4NN_MAX_LAYER_SIZE);
    for (unsigned l = 0; l < BS4NN_N_LAYERS; ++l) {
        printf("%lu %lu %ld\n", (unsigned long)BS4NN_LAYER_SIZES[l], (unsigned long)BS4NN_LAYER_SIZES[l + 1],
               (long)BS4NN_THRESHOLD_COUNTS[l]);
        for (unsigned j = 0; j < BS4NN_LAYER_SIZES[l + 1]; ++j) {
            for (unsigned i = 0; i < BS4NN_LAYER_SIZES[l]; ++i)
                putchar('0' + (int)BS4NN_SIGN_BIT(bs4nn_layer_bits[l], BS4NN_LAYER_ROW_BYTES[l], j, i));
            putchar('\n');
        }
    }
    return 0;
}
"""


def test_gcc_compiles_the_header_and_reads_every_bit(tmp_path):
    gcc = shutil.which("gcc")
    assert gcc, "gcc is a project requirement"
    network = random_network([29, 13, 10], [4, 3], seed=5)
    (tmp_path / "bs4nn_model.h").write_text(c_header(network, "mnist"))
    (tmp_path / "main.c").write_text(C_PROGRAM)
    (tmp_path / "other.c").write_text('#include "bs4nn_model.h"\nint other(void) { return BS4NN_TMAX; }\n')
    flags = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
    # Two translation units include the header: it must link and warn about nothing unused.
    sources = [str(tmp_path / "main.c"), str(tmp_path / "other.c")]
    subprocess.run([gcc, *flags, "-I", str(tmp_path), "-o", str(tmp_path / "dump"), *sources], check=True)
    lines = subprocess.run([str(tmp_path / "dump")], check=True, capture_output=True, text=True).stdout.splitlines()
    assert lines[0].split() == ["2", "256", "255", "29", "10", "29"]
    cursor = 1
    for layer in network.layers:
        assert lines[cursor].split() == [str(layer.fan_in), str(layer.fan_out), str(layer.threshold_count)]
        rows = lines[cursor + 1 : cursor + 1 + layer.fan_out]
        assert np.array_equal(np.array([[int(c) for c in row] for row in rows], np.uint8), layer.signs)
        cursor += 1 + layer.fan_out


FIRMWARE_PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>

#include "bs4nn.h"
#include "bs4nn_model.h"

int main(void) {
    static uint8_t pixels[BS4NN_N_INPUTS];
    static uint16_t times[BS4NN_N_INPUTS];
    const bs4nn_model *model = &bs4nn_exported_model;
    uint32_t total = bs4nn_total_neurons(model);
    void *workspace = malloc(bs4nn_workspace_bytes(model));
    bs4nn_result result;
    result.spike_times = (uint16_t *)malloc(total * sizeof(uint16_t));
    result.counts = (int32_t *)malloc(total * sizeof(int32_t));
    if (bs4nn_check_model(model) != BS4NN_OK || !workspace || !result.spike_times || !result.counts) return 3;
    while (fread(pixels, 1, BS4NN_N_INPUTS, stdin) == BS4NN_N_INPUTS) {
        if (bs4nn_encode_pixels(pixels, BS4NN_N_INPUTS, BS4NN_TMAX, BS4NN_IMAX, times) != BS4NN_OK) return 4;
        if (bs4nn_infer(model, times, 0, workspace, &result) != BS4NN_OK) return 5;
        printf("%ld %lu\n", (long)result.decision, (unsigned long)result.decision_time);
    }
    return 0;
}
"""


def test_firmware_runs_the_header_model_like_the_golden_model(tmp_path, mnist_test):
    """The firmware's own C routine (firmware/c) on bs4nn_exported_model agrees with the golden model."""
    from bs4nn.sim.golden import run_golden_images

    gcc = shutil.which("gcc")
    firmware = Path(__file__).resolve().parents[1] / "firmware" / "c"
    network = random_network([784, 40, 10], [12, 4], seed=11)
    (tmp_path / "bs4nn_model.h").write_text(c_header(network, "mnist"))
    (tmp_path / "main.c").write_text(FIRMWARE_PROGRAM)
    flags = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Wpedantic", "-Wconversion", "-Wshadow", "-Werror"]
    sources = [str(tmp_path / "main.c"), str(firmware / "bs4nn.c")]
    binary = tmp_path / "infer"
    subprocess.run([gcc, *flags, "-I", str(firmware), "-I", str(tmp_path), "-o", str(binary), *sources], check=True)
    images = mnist_test[0][:FIRMWARE_IMAGES]
    run = subprocess.run([str(binary)], input=images.tobytes(), check=True, capture_output=True)
    decisions = np.array([line.split() for line in run.stdout.decode().splitlines()], dtype=np.int64)
    golden = run_golden_images(network, images)
    assert decisions.shape == (FIRMWARE_IMAGES, 2)
    assert np.array_equal(decisions[:, 0], golden.decision)
    assert np.array_equal(decisions[:, 1], golden.decision_time)
