"""The pending graph of a sync, walked once: nodes in post-order, the device data it reads (its inputs, in
first-use order) and its key. The key hashes each node's op, scalar arguments, shapes and dtypes and which
earlier node or input feeds each operand, never values: a loop of identical steps hashes the same."""
from __future__ import annotations

import hashlib
from typing import List

from neuron_emu.compiler.ir import Graph, Node, Value
from neuron_emu.lazy.record import DeviceData, LNode, Ref


class Walk:
    __slots__ = ("nodes", "inputs", "outputs", "key", "_input_user", "_hash")

    def __init__(self, outputs: List[Ref]):
        self.nodes: List[LNode] = []
        self.inputs: List[DeviceData] = []
        self.outputs = outputs
        self._input_user: List[LNode] = []
        self._hash = None
        nid: dict = {}
        iid: dict = {}
        parts: list = []
        nodes, inputs, users = self.nodes, self.inputs, self._input_user
        for out in outputs:
            stack = [out.node]
            while stack:
                n = stack[-1]
                if n in nid:
                    stack.pop()
                    continue
                pushed = False
                for v in n.vals:
                    if type(v) is Ref and v.node not in nid:
                        stack.append(v.node)
                        pushed = True
                if pushed:
                    continue
                stack.pop()
                codes = []
                for v in n.vals:
                    if type(v) is Ref:
                        codes.append(nid[v.node] << 32 | v.idx)
                    else:
                        k = iid.get(v)
                        if k is None:
                            k = iid[v] = len(inputs)
                            inputs.append(v)
                            users.append(n)
                        codes.append(~k)
                nid[n] = len(nodes)
                nodes.append(n)
                parts.append((n.sig, tuple(codes)))
        parts.append(tuple(nid[o.node] << 32 | o.idx for o in outputs))
        parts.append(tuple((d.shape, d.dtype) for d in inputs))
        # the in-memory cache key: exact (tuples compare by content), cheap to hash; the stable hash that names
        # the graph on disk is computed from it only on a miss
        self.key = tuple(parts)

    @property
    def hash(self) -> int:
        """A hash stable across processes (Python's own hash of strings is salted per process)."""
        if self._hash is None:
            text = "\n".join(repr(p) for p in self.key)
            self._hash = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
        return self._hash

    @property
    def input_user(self) -> List[str]:
        return [f"{n.func._schema.name} at {n.where}" for n in self._input_user]

    def ir(self) -> Graph:
        """The compiler IR of this graph (compiler/ir.py): inputs are the device data, outputs the synced values."""
        vals: dict = {}
        inputs = []
        for k, d in enumerate(self.inputs):
            v = Value(k, d.shape, d.dtype, "input", index=k)
            vals[id(d)] = v
            inputs.append(v)
        nxt = [len(inputs)]

        def conv(a):
            if isinstance(a, (DeviceData, Ref)):
                return vals[id(a)] if type(a) is DeviceData else outs_of[id(a.node)][a.idx]
            if isinstance(a, (list, tuple)):
                return type(a)(conv(x) for x in a)
            return a
        outs_of: dict = {}
        nodes = []
        for i, n in enumerate(self.nodes):
            node = Node(n.func, conv(n.args), {k: conv(v) for k, v in n.kwargs.items()}, [], n.where, i)
            for j in range(n.outs):
                sh, dt = n.metas[j]
                v = Value(nxt[0], sh, dt, "node", node=node)
                nxt[0] += 1
                node.outputs.append(v)
            outs_of[id(n)] = node.outputs
            nodes.append(node)
        outputs = [outs_of[id(o.node)][o.idx] for o in self.outputs]
        return Graph(inputs, nodes, outputs, None)

