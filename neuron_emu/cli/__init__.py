"""The `neuron-emu` console script: run (unmodified scripts under import shims), profile, ls, monitor, top."""
