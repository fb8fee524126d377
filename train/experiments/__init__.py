"""The paper's experiments (BS4NN, Kheradpisheh et al. 2021) as reproducible analyses of a model.

* :mod:`.models`: load a checkpoint or a bit-model folder as one :class:`AnalysedModel`.
* :mod:`.report`: ``bs4nn report`` (Figs. 2, 3, 4, 6, 9 and weight statistics, Markdown + PNG).
* :mod:`.sweeps`: noise robustness (Fig. 5), threshold sweep (Fig. 7), alpha rounding and
  real-valued weights in place of ``alpha * B``.
* :mod:`.bnn`: the non-spiking binarized network (BNN) baseline of the paper's comparison.

All spike data come from the golden model (:mod:`bs4nn.sim.golden`), the same scoreboard the
hardware is checked against.
"""
