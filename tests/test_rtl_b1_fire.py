"""The B1 fire test's clipped quotient (:class:`bs4nn.rtl.b1neuron.ClippedQuotient`) equals the
golden model's ``clip(floor(V / ramp), 0, window)`` (:func:`bs4nn.sim.b1.fire_values`) on every
potential of small widths, and around every step of the shipped mnist-b1's ramp."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from bs4nn.rtl.b1neuron import ClippedQuotient
from bs4nn.sim.b1 import fire_values


def hardware_values(potentials: list[int], bits: int, ramp: int, window: int) -> np.ndarray:
    dut = ClippedQuotient(bits, ramp, window)
    got = []

    async def bench(ctx) -> None:
        for v in potentials:
            ctx.set(dut.potential, v)
            got.append(ctx.get(dut.value))

    simulator = Simulator(dut)
    simulator.add_testbench(bench)
    simulator.run()
    return np.array(got)


@pytest.mark.parametrize(("ramp", "window", "bits"), [(1, 1, 5), (3, 5, 8), (7, 16, 10), (5, 7, 9), (2, 8, 7)])
def test_every_potential_of_a_small_width(ramp: int, window: int, bits: int) -> None:
    potentials = list(range(-(1 << (bits - 1)), 1 << (bits - 1)))
    np.testing.assert_array_equal(
        hardware_values(potentials, bits, ramp, window), fire_values(potentials, ramp, window)
    )


def test_every_step_edge_of_the_mnist_b1_ramp() -> None:
    ramp, window, bits = 1574, 16, 19  # the shipped mnist-b1's hidden layer
    edges = [k * ramp + d for k in range(-2, window + 3) for d in (-1, 0, 1)]
    potentials = [*edges, (1 << (bits - 1)) - 1, -(1 << (bits - 1))]
    np.testing.assert_array_equal(
        hardware_values(potentials, bits, ramp, window), fire_values(potentials, ramp, window)
    )
