"""bs4nn: binarized spiking neural networks from training to a verified FPGA bitstream."""

__version__ = "0.1.0"
