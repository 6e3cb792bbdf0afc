"""CLI command groups; each module defines ``register(app)`` and calls the library."""
