"""Custom C++ operators on the emulated GpSimd engine (neuron-api.md section 4): device headers
(include/), the harness they run in (runtime/), the builder (build.py), library packaging (package.py),
loading and registration (library.py, torch_ops.py). The user API is torch_neuronx_emu.xla_impl.custom_op."""
