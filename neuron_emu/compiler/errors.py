"""The compiler's user-facing error (its own module so that passes can raise it without importing the driver),
and which compiler's name its messages carry: neuronx-cc (Inf2/Trn1) or neuron-cc (Inf1), set by compile_graph
for the duration of one compile so that every pass words its errors as the real compiler of that target."""
import contextlib
import contextvars

_COMPILER = contextvars.ContextVar("neuron_emu_compiler", default="neuronx-cc")


class CompilationError(RuntimeError):
    """The emulated compiler could not compile the graph (message names the op and its source)."""


def compiler_name() -> str:
    """`neuronx-cc` or `neuron-cc`: the compiler whose wording errors use in the compile under way."""
    return _COMPILER.get()


@contextlib.contextmanager
def compiling_with(name: str):
    token = _COMPILER.set(name)
    try:
        yield
    finally:
        _COMPILER.reset(token)
