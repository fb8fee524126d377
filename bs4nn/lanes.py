"""Lane limits of the core: how many postsynaptic neurons one weight-memory word updates.

Why here, on the ground floor: every stage names a lane count (the exporter lays the memory out
for it, the RTL generator builds that many lanes, the simulators and the board run them, every
CLI checks ``--lanes``), so the limits live where each stage imports them without reaching into
another stage (``export/layout.py`` derives the memory layout from them).
"""

MAX_LANES = 64
"""The widest weight-memory word the layout and the core support."""

DEFAULT_LANES = 16
"""Lane count when neither the user nor a bit-model manifest names one (the one default of every stage)."""
