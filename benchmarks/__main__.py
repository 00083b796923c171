"""Run every benchmark module in its own process (so peak-memory figures do not mix).

`python -m benchmarks` runs all; `python -m benchmarks tagging clustering` runs some.
Each module has a `main()` that prints its figures and writes them to runs/bench/<name>.json.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main(names: list[str]) -> int:
    modules = sorted(p.stem for p in HERE.glob("bench_*.py"))
    if names:
        modules = [m for m in modules if m.removeprefix("bench_") in names or m in names]
    failures = 0
    for module in modules:
        print(f"\n=== {module} ===", flush=True)
        code = subprocess.call([sys.executable, "-m", f"benchmarks.{module}"], cwd=HERE.parent)
        failures += code != 0
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
