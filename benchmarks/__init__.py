"""Speed benchmarks (results in docs/benchmarks.md). Each script runs as a file or as a module,
from the repository root: ``python benchmarks/x.py --help`` or ``python -m benchmarks.x --help``."""
