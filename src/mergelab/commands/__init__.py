"""CLI command groups; each module defines ``register(app)`` and calls the library."""

THREADS_HELP = "Tensors merged at once on the CPU, one thread each (default: all cores)."
