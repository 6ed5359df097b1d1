"""A light closed-loop HTTP load generator for the serving benchmark (run as its own process).

``clients`` keep-alive connections each send ``POST /{domain}/predict`` with one record, wait for the
whole answer and send the next one, until ``seconds`` have passed or ``max_requests`` were sent. It speaks
HTTP/1.1 on raw asyncio streams (uvloop when installed) instead of going through httpx: on a 2-core machine
the load generator shares the CPU with the server, and httpx costs several times more CPU per request.
Prints one JSON object (latencies summarised, status counts, devices seen) on stdout.

    python benchmarks/serve/loadgen.py --port 8000 --domain finance_sentiment --clients 64 --seconds 20 \\
        --texts texts.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any


def _request(host: str, port: int, domain: str, i: int, text: str) -> bytes:
    body = json.dumps({"records": [{"id": str(i), "text": text}]}).encode()
    head = (
        f"POST /{domain}/predict HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        return status, await reader.readexactly(length)
    body = b""
    while True:
        size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            return status, body
        body += chunk[:-2]


async def run_load(
    host: str, port: int, domain: str, texts: list[str], clients: int, seconds: float, max_requests: int,
    *, retry_after_429: float = 0.05,
) -> dict[str, Any]:
    """Closed loop over ``clients`` keep-alive connections; returns raw latencies (ms) and counts."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    devices: set[str] = set()
    errors: list[str] = []
    sent = 0
    rng = random.Random(0)
    order = [rng.randrange(len(texts)) for _ in range(4096)]
    stop_at = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal sent
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < stop_at and sent < max_requests:
                i = sent
                sent += 1
                payload = _request(host, port, domain, i, texts[order[i % len(order)]])
                started = time.perf_counter()
                writer.write(payload)
                status, body = await _read_response(reader)
                latencies.append((time.perf_counter() - started) * 1000)
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200 and (not devices or i % 997 == 0):
                    devices.add(str(json.loads(body)["device"]))
                elif status == 429:
                    await asyncio.sleep(retry_after_429)
        except (OSError, asyncio.IncompleteReadError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - began
    return {"latencies_ms": latencies, "statuses": statuses, "devices": sorted(devices), "seconds": wall,
            "connection_errors": errors[:5], "connection_error_count": len(errors)}


def summarise(raw: dict[str, Any], clients: int) -> dict[str, Any]:
    """requests/s (successful answers per second), p50/p99 latency, error rate, statuses."""
    lat = sorted(raw["latencies_ms"])
    ok = raw["statuses"].get(200, 0)
    n = len(lat)

    def pct(q: float) -> float | None:
        if not lat:
            return None
        k = min(n - 1, max(0, round(q / 100 * (n - 1))))
        return round(lat[k], 2)

    return {
        "clients": clients,
        "requests": n,
        "seconds": round(raw["seconds"], 2),
        "requests_per_s": round(ok / raw["seconds"], 2) if raw["seconds"] else None,
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "error_rate": round(1 - ok / n, 4) if n else None,
        "statuses": {str(k): v for k, v in sorted(raw["statuses"].items())},
        "devices": raw["devices"],
        "connection_errors": raw["connection_error_count"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--domain", required=True)
    parser.add_argument("--texts", required=True, help="JSON file: a list of texts")
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--max-requests", type=int, default=10**9)
    args = parser.parse_args()
    texts = json.loads(Path(args.texts).read_text(encoding="utf-8"))
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    raw = runner(run_load(args.host, args.port, args.domain, texts, args.clients, args.seconds, args.max_requests))
    json.dump(summarise(raw, args.clients), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
