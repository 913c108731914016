"""The compiler's user-facing error (its own module so that passes can raise it without importing the driver)."""


class CompilationError(RuntimeError):
    """The emulated neuronx-cc could not compile the graph (message names the op and its source)."""
