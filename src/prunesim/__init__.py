"""prunesim: how similar are the representations of pruned and unpruned CNNs?

The package is import-light on purpose: importing ``prunesim`` (or ``prunesim.metrics``)
never imports torch, so similarity/aggregate jobs start in a fraction of a second.
Modules that need torch (models, training, pruning, activations) import it themselves.
"""

__version__ = "0.1.0"
