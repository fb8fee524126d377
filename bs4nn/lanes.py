"""Lane limits of the core: how many postsynaptic neurons one weight-memory word updates.

Why here, on the ground floor: every stage names a lane count (the exporter lays the memory out
for it, the RTL generator builds that many lanes, the simulators and the board run them, every
CLI checks ``--lanes``), so the limits live where each stage imports them without reaching into
another stage (``export/layout.py`` derives the memory layout from them).
"""

MAX_LANES = 64
"""The widest weight-memory word the layout supports, and the widest block-RAM counter word."""

DEFAULT_LANES = 16
"""Lane count when neither the user nor a bit-model manifest names one (the one default of every stage)."""


def is_wide(lanes: int) -> bool:
    """Lanes beyond :data:`MAX_LANES` ask for the wide core (:mod:`bs4nn.rtl.wide`): every layer's
    counters in registers, a whole layer updated per cycle (so ``lanes`` must be at least the
    widest layer), its weight rows in parallel memories of :func:`weight_lanes` bits."""
    return lanes > MAX_LANES


def weight_lanes(lanes: int) -> int:
    """Width of one weight-memory word (the exported layout and the core's ``weights`` port) of a
    core with ``lanes`` counters per cycle: ``lanes`` itself, or :data:`MAX_LANES` for a wide core."""
    return min(lanes, MAX_LANES)
