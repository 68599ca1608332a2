"""Serving under load: latency percentiles and requests per second at several concurrencies against real
`inkloop serve` processes, two settings side by side in one run:

- `--compare log` (default): the request log on and off (the cost of logging);
- `--compare runtime`: the model run by TorchScript (the path before ONNX Runtime) and by the default runtime (the
  shipped model's int8 graph in ONNX Runtime), both with the request log on.

    .venv/bin/python bench/serving_bench.py [--compare log|runtime] [--concurrency 1 8 32] [--requests 48]
        [--workers 1] [--database URL]

Each request uploads one of the six golden paragraphs (model/golden) with a unique PNG text chunk, so every
request stores a new object, as production traffic does. Both servers run at once; at each concurrency level the
two settings are measured back to back, in alternating order. For each setting the number of 200 answers is
reported next to the number of new request rows (they must be equal with the log on, and the rows 0 with it off).
The load generator runs on the same machine as the server and takes some of its CPU. Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image, PngImagePlugin
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_bench import machine  # noqa: E402

from db.models import Request  # noqa: E402
from db.session import make_engine, session_factory  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
INKLOOP = str(Path(sys.executable).with_name("inkloop"))
GOLDEN = sorted((ROOT / "model" / "golden").glob("*.png"))
_counter = itertools.count()


def page_bytes() -> bytes:
    index = next(_counter)
    metadata = PngImagePlugin.PngInfo()
    metadata.add_text("request", str(index))
    buffer = io.BytesIO()
    Image.open(GOLDEN[index % len(GOLDEN)]).save(buffer, "PNG", pnginfo=metadata)
    return buffer.getvalue()


def count_rows(url: str) -> int:
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            return int(session.scalar(select(func.count()).select_from(Request)) or 0)
    finally:
        engine.dispose()


async def load(url: str, concurrency: int, total: int, bodies: list[bytes]) -> dict:
    latencies: list[float] = []
    server_ms: list[float] = []  # the server's own latency_ms: upload check + queueing + inference, not logging
    statuses: list[int] = []
    queue = iter(range(total))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:

        async def user() -> None:
            for index in queue:
                started = time.perf_counter()
                response = await client.post("/v1/predict", files={"image": ("p.png", bodies[index])})
                latencies.append((time.perf_counter() - started) * 1000)
                statuses.append(response.status_code)
                if response.status_code == 200:
                    server_ms.append(response.json()["latency_ms"])

        started = time.perf_counter()
        await asyncio.gather(*(user() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "concurrency": concurrency,
        "requests": total,
        "ok_200": statuses.count(200),
        "p50_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(cuts[94], 1),
        "p99_ms": round(cuts[98], 1),
        "requests_per_s": round(total / elapsed, 2),
        "server_p50_ms": round(statistics.median(server_ms), 1) if server_ms else None,
    }


def start_server(args: argparse.Namespace, setting: str, port: int, home: Path) -> tuple[subprocess.Popen, str, str]:
    database = args.database or f"sqlite:///{home / 'inkloop.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INKLOOP_")}
    env.update(INKLOOP_HOME=str(home), INKLOOP_DATABASE_URL=database, **SETTINGS[args.compare][setting])
    subprocess.run([INKLOOP, "init"], env=env, check=True, capture_output=True)
    server = subprocess.Popen(
        [INKLOOP, "serve", "--port", str(port), "--workers", str(args.workers), "--log-level", "warning"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,  # keep this script's stdout pure JSON
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the server did not start") from None
        time.sleep(0.3)
    asyncio.run(load(url, 2, 6, [page_bytes() for _ in range(6)]))  # warm-up
    return server, url, database


# The two settings each comparison runs side by side: label -> the server's environment.
SETTINGS = {
    "log": {"log on": {"INKLOOP_REQUEST_LOG": "true"}, "log off": {"INKLOOP_REQUEST_LOG": "false"}},
    "runtime": {
        "torchscript": {"INKLOOP_INFERENCE_RUNTIME": "torchscript"},
        "default": {"INKLOOP_INFERENCE_RUNTIME": "auto"},
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare", choices=sorted(SETTINGS), default="log", help="Which two settings to compare.")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=48, help="Requests per concurrency level (at least 3x it).")
    parser.add_argument("--workers", type=int, default=1, help="Server processes.")
    parser.add_argument("--database", help="Database URL (default: a fresh SQLite file per setting).")
    parser.add_argument("--out", type=Path, help="Also write the JSON report to this file.")
    args = parser.parse_args()
    first, second = SETTINGS[args.compare]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        # Both servers stay up (the idle one costs memory, not CPU); at each level the two settings run back to
        # back, in alternating order, so drift in the machine's speed does not masquerade as a difference.
        servers = {
            setting: start_server(args, setting, 18700 + i, Path(tmp) / f"setting-{i}")
            for i, setting in enumerate((first, second))
        }
        runtimes = {
            setting: httpx.get(f"{url}/healthz").json()["model_runtime"] for setting, (_, url, _) in servers.items()
        }
        try:
            for level, concurrency in enumerate(args.concurrency):
                for setting in (first, second) if level % 2 == 0 else (second, first):
                    _, url, database = servers[setting]
                    total = max(args.requests, 3 * concurrency)
                    bodies = [page_bytes() for _ in range(total)]
                    before = count_rows(database)
                    figures = asyncio.run(load(url, concurrency, total, bodies))
                    figures["new_request_rows"] = count_rows(database) - before
                    figures["setting"] = setting
                    figures["runtime"] = runtimes[setting]
                    results.append(figures)
                    print(json.dumps(figures), file=sys.stderr)
        finally:
            for server, _, _ in servers.values():
                server.terminate()
                server.wait(timeout=30)
    by_setting = {(r["setting"], r["concurrency"]): r for r in results}
    side_by_side = {
        str(c): {
            f"p50_ms {second} - {first}": round(
                by_setting[(second, c)]["p50_ms"] - by_setting[(first, c)]["p50_ms"], 1
            ),
            f"p99_ms {first} / {second}": round(
                by_setting[(first, c)]["p99_ms"] / by_setting[(second, c)]["p99_ms"], 2
            ),
            f"requests_per_s {second} / {first}": round(
                by_setting[(second, c)]["requests_per_s"] / by_setting[(first, c)]["requests_per_s"], 3
            ),
        }
        for c in args.concurrency
    }
    report = {
        "benchmark": "serving",
        "compare": args.compare,
        "machine": machine(),
        "workers": args.workers,
        "database": "postgresql" if args.database and args.database.startswith("postgresql") else "sqlite",
        "results": results,
        "side_by_side": side_by_side,
    }
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
