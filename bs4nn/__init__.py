"""bs4nn: binarized spiking neural networks from training to a verified FPGA bitstream.

The public API (:mod:`bs4nn.api`) is loaded on first use, so ``import bs4nn`` stays cheap and the
stage packages, which import :mod:`bs4nn.errors` and friends, never import it back at start-up:

>>> import bs4nn
>>> sorted(bs4nn.__all__)
['Model', 'export_bits', 'load', 'load_dataset', 'train_preset']
"""

from bs4nn.version import __version__ as __version__

__all__ = ["Model", "export_bits", "load", "load_dataset", "train_preset"]


def __getattr__(name: str):
    if name in __all__:
        from bs4nn import api

        return getattr(api, name)
    raise AttributeError(f"module 'bs4nn' has no attribute {name!r}")
