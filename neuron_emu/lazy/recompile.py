"""Why a graph was compiled: the input whose shape or dtype changed, or where the op sequence departs from the
nearest graph compiled before, and the user's source line where the graph was cut (`mark_step`, `.item()`, a
print, a CPU fallback). torch_xla users see only CompileTime growing; this says which line to fix."""
from __future__ import annotations

import difflib
from collections import deque
from dataclasses import dataclass, field
from typing import Deque, List


@dataclass
class GraphRecord:
    """What a compiled graph looked like, kept to explain the next miss."""
    name: str                      # MODULE_<hash>+<flags>
    ops: List[str]                 # op per node
    wheres: List[str]              # source line per node
    inputs: List[tuple]            # (shape, dtype) per input
    input_user: List[str]
    cut: str


@dataclass
class Recompile:
    graph: str
    cut: str
    reasons: List[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.graph} (graph cut by {self.cut}): " + "; ".join(self.reasons)


_seen: Deque[GraphRecord] = deque(maxlen=64)
recompiles: Deque[Recompile] = deque(maxlen=256)
graph_cuts: Deque[str] = deque(maxlen=256)


def _shape(s, d) -> str:
    return f"{str(d).replace('torch.', '')}{list(s)}"


def explain(new: GraphRecord) -> Recompile:
    rec = Recompile(new.name, new.cut)
    if not _seen:
        rec.reasons.append("first compilation")
    else:
        same_ops = [g for g in _seen if g.ops == new.ops]
        if same_ops:
            old = same_ops[-1]
            for i, (a, b) in enumerate(zip(old.inputs, new.inputs)):
                if a[0] != b[0]:
                    rec.reasons.append(f"input {i} (read by {new.input_user[i]}) changed shape from "
                                       f"{list(a[0])} to {list(b[0])}")
                if a[1] != b[1]:
                    rec.reasons.append(f"input {i} (read by {new.input_user[i]}) changed dtype from "
                                       f"{str(a[1])[6:]} to {str(b[1])[6:]}")
            if len(old.inputs) != len(new.inputs):
                rec.reasons.append(f"the graph reads {len(new.inputs)} device tensors instead of {len(old.inputs)}")
            if not rec.reasons:
                rec.reasons.append(f"same ops as {old.name} with different shapes of intermediate values or "
                                   f"scalar arguments")
        else:
            best, ratio = None, -1.0
            for g in _seen:
                r = difflib.SequenceMatcher(None, g.ops, new.ops, autojunk=False).ratio()
                if r > ratio:
                    best, ratio = g, r
            sm = difflib.SequenceMatcher(None, best.ops, new.ops, autojunk=False)
            for tag, i1, i2, j1, j2 in sm.get_opcodes():
                if tag == "equal":
                    continue
                old_op = f"{best.ops[i1]} at {best.wheres[i1]}" if i1 < i2 else "nothing"
                new_op = f"{new.ops[j1]} at {new.wheres[j1]}" if j1 < j2 else "nothing"
                rec.reasons.append(f"op sequence differs from the nearest cached graph {best.name} "
                                   f"({len(best.ops)} ops) at op #{j1}: it had {old_op}, this graph has {new_op}")
                break
            rec.reasons.append(f"{len(new.ops)} ops, {100 * ratio:.0f}% similar to {best.name}")
    _seen.append(new)
    recompiles.append(rec)
    return rec


def report() -> str:
    lines = []
    if recompiles:
        lines.append("Compilations (why each graph was compiled):")
        lines += [f"  {r}" for r in recompiles]
    if graph_cuts:
        lines.append("Graph cuts before mark_step:")
        lines += [f"  {c}" for c in graph_cuts]
    return "\n".join(lines) + ("\n" if lines else "")


def clear() -> None:
    _seen.clear()
    recompiles.clear()
    graph_cuts.clear()
