"""Start-up cost of a GenGuard process: import time and memory per gateway worker (issue #9).

One command, every figure measured in the same run (before/after: ``--gateway-root`` serves and
imports another checkout, e.g. the last commit)::

    OMP_NUM_THREADS=1 .venv/bin/python bench/worker_memory.py [--repeat 5] [--json out.json]

1. Import time of ``gateway.cli`` and ``gateway.app`` in fresh interpreters (median of
   ``--repeat``), the peak RSS of that interpreter, and which heavy libraries the import pulled in.
2. ``genguard serve`` (1 worker, embedded Redis) in front of the zero-latency fake upstream of
   ``bench/proxy_overhead.py``, once with every stage off and once with the default policy:
   ``--requests`` image requests through the official ``openai`` client (warm-up), then RSS and
   USS (pages only that process holds) of the worker, and the heavy libraries it has imported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import proxy_overhead  # (the fake upstream, `genguard serve` and the load generator)

HEAVY = (
    "torch",
    "transformers",
    "open_clip",
    "onnxruntime",
    "diffusers",
    "pocketsphinx",
    "resemblyzer",
    "profanity_check",
    "sklearn",
    "scipy",
    "cv2",
    "c2pa",
)

_PROBE = """\
import json, resource, sys, time
started = time.perf_counter()
import {module}
seconds = time.perf_counter() - started
print(json.dumps({{
    "seconds": seconds,
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "heavy": [m for m in {heavy!r} if m in sys.modules],
}}))
"""


def import_cost(module: str, root: Path, repeat: int) -> dict[str, object]:
    """Median import time of ``module`` in ``repeat`` fresh interpreters run from ``root``."""
    runs = []
    for _ in range(repeat):
        code = _PROBE.format(module=module, heavy=HEAVY)
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {
        "module": module,
        "seconds_median": statistics.median(r["seconds"] for r in runs),
        "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in runs),
        "heavy": runs[-1]["heavy"],
    }


def worker_heavy_modules(pid: int) -> list[str]:
    """The heavy libraries mapped into process ``pid`` (their shared objects in its maps)."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    markers = {
        "torch": "libtorch",
        "transformers": "/transformers/",
        "open_clip": "/open_clip/",
        "onnxruntime": "onnxruntime",
        "pocketsphinx": "pocketsphinx",
        "scipy": "/scipy/",
        "sklearn": "/sklearn/",
        "cv2": "/cv2/",
        "c2pa": "c2pa",
    }
    return [name for name, marker in markers.items() if marker in maps]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="fresh interpreters per import")
    parser.add_argument("--requests", type=int, default=50, help="warm-up requests per gateway")
    parser.add_argument("--gateway-root", type=Path, help="measure another checkout")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    root = (args.gateway_root or proxy_overhead.ROOT).resolve()
    proxy_overhead.GATEWAY_ROOT = root
    results: dict[str, object] = {"root": str(root), "imports": [], "workers": []}
    for module in ("gateway.cli", "gateway.app"):
        row = import_cost(module, root, args.repeat)
        results["imports"].append(row)  # type: ignore[attr-defined]
        print(
            f"import {module}: {row['seconds_median']:.2f} s (median of {args.repeat}), "
            f"peak RSS {row['peak_rss_mib']:.0f} MiB, heavy: {', '.join(row['heavy']) or '-'}",  # type: ignore[arg-type]
            flush=True,
        )
    setups = (("stages off", proxy_overhead.STAGES_OFF_POLICY), ("default policy", None))
    with tempfile.TemporaryDirectory(prefix="genguard-bench-") as tmp_name:
        tmp = Path(tmp_name)
        with proxy_overhead.fake_upstream(tmp) as upstream:
            for name, policy in setups:
                with proxy_overhead.gateway(tmp, upstream, workers=1, policy=policy) as gw:
                    run = proxy_overhead.load(name, f"{gw.base_url}/v1", gw.key, 1, args.requests)
                    memory = proxy_overhead.worker_memory(gw.process)
                    heavy = worker_heavy_modules(int(memory[0]["pid"]))
                row = {"setup": name, "errors": run.errors, "memory": memory, "heavy": heavy}
                results["workers"].append(row)  # type: ignore[attr-defined]
                mem = ", ".join(f"{m['rss_mib']:.0f} / {m['uss_mib']:.0f}" for m in memory)
                print(
                    f"worker, {name}: RSS / USS {mem} MiB after {args.requests} requests "
                    f"({run.errors} errors); heavy libraries mapped: {', '.join(heavy) or '-'}",
                    flush=True,
                )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
