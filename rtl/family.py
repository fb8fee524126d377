"""One place that picks a network family's core: BS4NN (:mod:`bs4nn.rtl.core`) or B1
(:mod:`bs4nn.rtl.b1core`), by the type of the network a bit-model folder loads to.

Everything downstream of the core (generator, testbenches, board top) takes the core and its
:class:`~bs4nn.rtl.params.CoreParams` from here, so the family is a parameter, not a copy.
"""

from __future__ import annotations

import numpy as np

from bs4nn.lanes import DEFAULT_LANES, is_wide
from bs4nn.rtl.b1core import B1Core, B1CoreParams
from bs4nn.rtl.core import Bs4nnCore
from bs4nn.rtl.cycles import predicted_b1_cycles, predicted_cycles, worst_case_b1_cycles, worst_case_cycles
from bs4nn.rtl.params import CoreParams
from bs4nn.rtl.wide import Bs4nnWideCore
from bs4nn.sim.b1 import B1Network, run_b1
from bs4nn.sim.golden import IntegerNetwork, run_golden


def core_for(
    network: IntegerNetwork | B1Network,
    lanes: int = DEFAULT_LANES,
    *,
    weight_init: bool = True,
    formal: bool = False,
    assume_valid_input: bool = True,
) -> Bs4nnCore:
    """The core of ``network``'s family and ``lanes``: the narrow core (1..64 lanes) or the wide one
    (more; BS4NN only for now).  Raises ``ValueError`` for what it cannot build.  ``formal`` and
    ``assume_valid_input`` as :class:`~bs4nn.rtl.core.Bs4nnCore` (for :mod:`bs4nn.rtl.formal`)."""
    family = B1Core if isinstance(network, B1Network) else Bs4nnCore
    if is_wide(lanes):
        core_params(network, lanes)  # refuses what no wide core is built for, before any core exists
        family = Bs4nnWideCore
    return family(network, lanes, weight_init=weight_init, formal=formal, assume_valid_input=assume_valid_input)


def core_params(network: IntegerNetwork | B1Network, lanes: int) -> CoreParams:
    """The widths and payload layouts of :func:`core_for`'s core, without elaborating it.

    Raises ``ValueError`` for a lane count no core is built for: a wide one (beyond 64) short of the
    widest layer, or any wide one for a B1 network (the B1 core is narrow only), so every command
    that sizes a core first (``rtl``, ``build``, ``bench hw``) refuses in the same words."""
    if isinstance(network, B1Network):
        if is_wide(lanes):
            raise ValueError(f"lanes {lanes}: the B1 core is narrow only (lanes 1..64); the wide core is BS4NN's")
        return B1CoreParams.from_network(network, lanes)
    return CoreParams.from_network(network, lanes)


def worst_case_cycles_of(params: CoreParams) -> int:
    """Upper bound of the cycles of one image (and the clear) of either family's core."""
    return worst_case_b1_cycles(params) if isinstance(params, B1CoreParams) else worst_case_cycles(params)


def predicted_cycles_of(
    params: CoreParams, network: IntegerNetwork | B1Network, input_times: np.ndarray, early_exit: bool = False
) -> np.ndarray:
    """The core's own cycles per image (``(batch,)``) by its family's cycle-exact formula, on the
    golden model's run of ``input_times`` (``early_exit``: BS4NN only, a B1 core has none)."""
    if isinstance(params, B1CoreParams):
        return predicted_b1_cycles(params, run_b1(network, input_times))
    return predicted_cycles(params, run_golden(network, input_times), early_exit, network)
