"""bs4nn.sim: the time semantics, the bit-exact golden model and the cocotb testbenches."""
