"""Tools: the brickproof CLI, benchmarks and the virtual board (CPython only)."""
