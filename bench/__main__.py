"""`python -m bench [NAME ...]`: run the benchmarks, print every figure, merge them into var/bench.json."""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path

import bench


def main(names: list[str]) -> int:
    modules = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_"))
    chosen = [m for m in modules if not names or m.removeprefix("bench_") in names or m in names]
    if not chosen:
        print(f"no benchmark matches {names}; available: {', '.join(modules)}", file=sys.stderr)
        return 2
    out = Path("var/bench.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(out.read_text()) if out.exists() else {}
    for name in chosen:
        print(f"== {name}", flush=True)
        started = time.monotonic()
        figures = importlib.import_module(f"bench.{name}").run()
        for key, value in figures.items():
            print(f"   {key:<36} {value:,.4g}" if isinstance(value, float) else f"   {key:<36} {value}")
        results.update(figures)
        results[f"{name}_finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        print(f"   ({time.monotonic() - started:.1f} s)")
        out.write_text(json.dumps(results, indent=2, sort_keys=True))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
