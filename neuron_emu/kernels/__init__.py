"""Kernel-level API: each function runs one engine instruction on torch tensors and returns its cost."""
from neuron_emu.kernels._run import counters, reset_counters  # noqa: F401
from neuron_emu.kernels import vector_engine, scalar_engine, gpsimd_engine, dma  # noqa: F401,E402
from neuron_emu.kernels.tensor_engine import conv2d, matmul, transpose  # noqa: F401,E402
