"""`torch_neuronx.xla_impl`: the custom C++ operator API lives in `custom_op`."""
