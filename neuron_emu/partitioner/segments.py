"""Which nodes run where: maximal runs of supported nodes (in execution order) become segments.

A run of consecutive nodes in execution order can never depend on a node scheduled after it, so every segment is
acyclic with respect to the CPU nodes around it. Runs shorter than `min_segment_size` stay on CPU."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, List

from neuron_emu.compiler.ir import Node, Value


@dataclass
class Segment:
    nodes: List[Node]
    inputs: List[Value] = field(default_factory=list)    # non-constant values read from outside, in first-use order
    outputs: List[Value] = field(default_factory=list)   # values produced here and read after it (or returned)


@dataclass
class Plan:
    """Execution order: each step is a Segment (compiled) or a Node (run on CPU)."""
    steps: list
    segments: List[Segment]
    graph_outputs: List[Value] = field(default_factory=list)

    @property
    def cpu_nodes(self) -> List[Node]:
        return [s for s in self.steps if isinstance(s, Node)]

    def split(self, seg: Segment, parts: List[List[Node]]) -> List[Segment]:
        """Replace `seg` by consecutive sub-segments (pipeline stages), rewiring every segment's inputs/outputs."""
        assert [n for p in parts for n in p] == seg.nodes and all(parts)
        subs = [Segment(list(p)) for p in parts]
        i = self.steps.index(seg)
        self.steps[i:i + 1] = subs
        j = self.segments.index(seg)
        self.segments[j:j + 1] = subs
        _wire(self.steps, self.graph_outputs)
        return subs


def runs(nodes: List[Node], is_supported: Callable[[Node], bool]) -> List[List[Node]]:
    """The maximal runs of consecutive supported nodes, in execution order."""
    out, cur = [], []
    for n in nodes:
        if is_supported(n):
            cur.append(n)
        else:
            if cur:
                out.append(cur)
                cur = []
    if cur:
        out.append(cur)
    return out


def partition(nodes: List[Node], graph_outputs: List[Value], is_supported: Callable[[Node], bool],
              min_segment_size: int = 1, keep: Callable[[List[List[Node]]], List[List[Node]]] = None) -> Plan:
    """Plan the execution of `nodes` (a graph's live nodes in order). `keep(candidate_runs)` may narrow the runs
    that are compiled (e.g. Inf1's single-fusion ratio rule); a run dropped there runs on CPU."""
    candidates = [r for r in runs(nodes, is_supported) if len(r) >= max(1, min_segment_size)]
    if keep is not None:
        candidates = keep(candidates)
    seg_of = {}
    segments = [Segment(list(r)) for r in candidates]
    for s in segments:
        for n in s.nodes:
            seg_of[id(n)] = s
    steps, seen = [], set()
    for n in nodes:
        s = seg_of.get(id(n))
        if s is None:
            steps.append(n)
        elif id(s) not in seen:
            seen.add(id(s))
            steps.append(s)
    _wire(steps, graph_outputs)
    return Plan(steps, segments, list(graph_outputs))


def _wire(steps, graph_outputs: List[Value]) -> None:
    """Each segment's inputs (non-constant values it reads from outside) and outputs (what later steps or the
    graph's outputs read)."""
    readers = []  # per step, the value ids it reads
    for st in steps:
        nodes = st.nodes if isinstance(st, Segment) else [st]
        readers.append({a.id for n in nodes for a in n.value_args()})
    returned = {v.id for v in graph_outputs}
    for i, st in enumerate(steps):
        if not isinstance(st, Segment):
            continue
        produced = {o.id for n in st.nodes for o in n.outputs}
        seen = set()
        st.inputs = []
        for n in st.nodes:
            for a in n.value_args():
                if a.kind != "const" and a.id not in produced and a.id not in seen:
                    seen.add(a.id)
                    st.inputs.append(a)
        later = set().union(*readers[i + 1:]) if i + 1 < len(readers) else set()
        st.outputs = [o for n in st.nodes for o in n.outputs if o.id in later or o.id in returned]
