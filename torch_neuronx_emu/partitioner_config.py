"""torch_neuronx.PartitionerConfig (neuron-api.md 2.7): the settings of the graph partitioner that
`trace(..., partitioner_config=...)` runs (partition.py). Arguments are checked here, so a bad value fails when
the config is made, naming the argument."""
from __future__ import annotations

from typing import Optional

ANALYZE_PARAMETERS = ("compiler_workdir", "additional_ignored_ops", "max_workers")  # the documented subset
# trace keywords a partitioned trace honours for every Neuron subgraph (the others need one whole-model artifact)
TRACE_KWARGS = ("compiler_args", "compiler_workdir")


def _limit(name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or (v < 1 and v != -1):
        raise ValueError(f"{name} must be a positive integer or -1 (unchecked), got {v!r}")
    return v


class PartitionerConfig:
    """Partition a model into Neuron subgraphs (compiled) and CPU subgraphs (operators neuronx-cc does not support,
    and `ops_to_partition`), in execution order.

    - `model_support_percentage_threshold`: the fraction (0-1) of the model's operators that must be supported,
      else ValueError.
    - `min_subgraph_size` / `max_subgraph_count`: -1 = unchecked; a subgraph with fewer operators, or more
      subgraphs (Neuron and CPU together) -> ValueError.
    - `ops_to_partition`: set of "aten::<op>" placed on CPU although supported.
    - `analyze_parameters`: keywords of torch_neuronx.analyze used for the support analysis (compiler_workdir,
      additional_ignored_ops, max_workers).
    - `trace_kwargs`: keywords of torch_neuronx.trace applied to every Neuron subgraph (compiler_args,
      compiler_workdir); None = those given to trace itself."""

    def __init__(self, *, trace_kwargs: Optional[dict] = None, model_support_percentage_threshold: float = 0.5,
                 min_subgraph_size: int = -1, max_subgraph_count: int = -1, ops_to_partition: Optional[set] = None,
                 analyze_parameters: Optional[dict] = None):
        if trace_kwargs is not None:
            if not isinstance(trace_kwargs, dict):
                raise TypeError(f"trace_kwargs must be a dict of torch_neuronx.trace keyword arguments, got "
                                f"{type(trace_kwargs).__name__}")
            bad = [k for k in trace_kwargs if k not in TRACE_KWARGS]
            if bad:
                raise ValueError(f"trace_kwargs: {bad} cannot be applied to partitioned subgraphs by neuron-emu "
                                 f"(supported: {list(TRACE_KWARGS)})")
        t = model_support_percentage_threshold
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0.0 <= t <= 1.0:
            raise ValueError(f"model_support_percentage_threshold must be a fraction between 0 and 1, got {t!r}")
        ops = set() if ops_to_partition is None else ops_to_partition
        if not isinstance(ops, (set, frozenset, list, tuple)) or not all(isinstance(o, str) for o in ops):
            raise TypeError("ops_to_partition must be a set of operator names such as 'aten::log_softmax'")
        bad = sorted(o for o in ops if not o.startswith("aten::"))
        if bad:
            raise ValueError(f"ops_to_partition: {bad} are not operator names of the form 'aten::<op>'")
        params = {} if analyze_parameters is None else analyze_parameters
        if not isinstance(params, dict):
            raise TypeError(f"analyze_parameters must be a dict, got {type(params).__name__}")
        bad = [k for k in params if k not in ANALYZE_PARAMETERS]
        if bad:
            raise ValueError(f"analyze_parameters: {bad} are not accepted (allowed: {list(ANALYZE_PARAMETERS)})")
        self.trace_kwargs = None if trace_kwargs is None else dict(trace_kwargs)
        self.model_support_percentage_threshold = float(t)
        self.min_subgraph_size = _limit("min_subgraph_size", min_subgraph_size)
        self.max_subgraph_count = _limit("max_subgraph_count", max_subgraph_count)
        self.ops_to_partition = set(ops)
        self.analyze_parameters = dict(params)

    def __repr__(self):
        return (f"PartitionerConfig(trace_kwargs={self.trace_kwargs}, model_support_percentage_threshold="
                f"{self.model_support_percentage_threshold}, min_subgraph_size={self.min_subgraph_size}, "
                f"max_subgraph_count={self.max_subgraph_count}, ops_to_partition={self.ops_to_partition}, "
                f"analyze_parameters={self.analyze_parameters})")
