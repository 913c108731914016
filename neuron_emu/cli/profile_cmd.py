"""`neuron-emu profile MODEL.pt [--inputs ...]`: the profile() Report of a saved traced model."""
from __future__ import annotations

import re

import torch



_SPEC = re.compile(r"^(\d+(?:x\d+)*)(?::(\w+))?$")


def parse_input(spec: str) -> tuple:
    """'1x128:int64' -> zeros of that shape and dtype; 'inputs.pt' -> the tensor(s) torch.save'd there."""
    m = _SPEC.match(spec)
    if m:
        dtype = getattr(torch, m.group(2) or "float32", None)
        if not isinstance(dtype, torch.dtype):
            raise SystemExit(f"neuron-emu profile: --inputs {spec!r}: unknown dtype {m.group(2)!r}")
        return (torch.zeros([int(d) for d in m.group(1).split("x")], dtype=dtype),)
    try:
        obj = torch.load(spec, weights_only=True)
    except (OSError, RuntimeError) as e:
        raise SystemExit(f"neuron-emu profile: --inputs {spec!r} is neither SHAPE[:DTYPE] (e.g. 1x128:int64) nor a "
                         f"readable torch.save file: {e}") from None
    return tuple(obj) if isinstance(obj, (list, tuple)) else (obj,)


def inputs_from_header(model) -> tuple:
    """Zero inputs of the shapes and dtypes the model was compiled for."""
    from neuron_emu.compiler import artifact
    from neuron_emu.profiler import artifacts_of

    blobs = artifacts_of(model)
    if not blobs:
        raise SystemExit("neuron-emu profile: the model holds no Neuron-compiled graph (was it traced with "
                         "torch_neuronx.trace / torch_neuron.trace?)")
    header = artifact.deserialize(blobs[0])[0]
    return tuple(torch.zeros(d["shape"], dtype=getattr(torch, d["dtype"])) for d in header["inputs"])


def main(args) -> int:
    import torch_neuron_emu
    import torch_neuronx_emu
    from neuron_emu.compiler import artifact
    from neuron_emu.profiler import artifacts_of

    try:
        model = torch.jit.load(args.model)
    except (OSError, RuntimeError, ValueError) as e:
        raise SystemExit(f"neuron-emu profile: cannot load {args.model}: {e}") from None
    inputs = sum((parse_input(s) for s in args.inputs), ()) if args.inputs else inputs_from_header(model)
    blobs = artifacts_of(model)
    gen = int(artifact.deserialize(blobs[0])[0].get("core_generation", 2)) if blobs else 2
    prof = torch_neuron_emu.profile if gen == 1 else torch_neuronx_emu.profile
    kw = {"num_cores": args.num_cores}
    if args.instance_type:
        kw["instance_type"] = args.instance_type
    try:
        rep = prof(model, *inputs, **kw)
    except (ValueError, RuntimeError) as e:
        raise SystemExit(f"neuron-emu profile: {e}") from None
    print(rep.to_json() if args.json else rep.to_markdown())
    if args.output:
        rep.to_json(args.output)
    if args.perfetto:
        rep.to_perfetto(args.perfetto)
    if args.plot:
        rep.plot(args.plot)
    return 0



