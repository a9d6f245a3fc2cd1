#!/usr/bin/env python3
"""Rewrites on an object store with network latency: how long a nightly run that meets a new column
takes to bring the earlier files up to date when every storage request waits a round trip.

moto_server (from `.venv`, as the tests use it) stands in for S3, behind a proxy on 127.0.0.1 that
holds every chunk a client sends for `--latency-ms` (one round trip per request). For each build
given, in turn and `--repeat` times: the history (`--days` days before 2024-01-01, 4 campaigns,
50 records a day) is extracted straight into a fresh prefix, then the day 2024-01-01, where every
record has a new key, through the proxy; its wall time and the files it rewrote are printed.

Usage: `.venv/bin/python benches/s3_rewrite_latency.py [--latency-ms 50] [--days 61] [--repeat 2] BIN...`
(a BIN is a cube-extract binary, e.g. target/release/cube-extract; two builds to compare them). Needs
`target/release/examples/cube_sim` and `make venv`. Not part of `make bench`: moto is CPU-bound
Python on the same cores, so only the round trips' share of a build's time shows here.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SIM_BIN = REPO / "target/release/examples/cube_sim"
MOTO = REPO / ".venv/bin/moto_server"
CAMPAIGNS = "101,102,103,104"
NEW_COLUMN_DAY = "2024-01-01"


def delaying_proxy(target_port: int, latency_s: float) -> int:
    """Starts a TCP proxy to `target_port` on a thread; returns its port."""
    ready: list[int] = []
    started = threading.Event()

    async def pump(reader, writer, delay):
        try:
            while data := await reader.read(1 << 16):
                if delay:
                    await asyncio.sleep(delay)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def handle(client_r, client_w):
        server_r, server_w = await asyncio.open_connection("127.0.0.1", target_port)
        await asyncio.gather(pump(client_r, server_w, latency_s), pump(server_r, client_w, 0))

    async def serve():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        ready.append(server.sockets[0].getsockname()[1])
        started.set()
        async with server:
            await server.serve_forever()

    threading.Thread(target=lambda: asyncio.run(serve()), daemon=True).start()
    started.wait(10)
    return ready[0]


def start_listening(cmd: list[str], marker: str) -> tuple[subprocess.Popen, str]:
    """Starts `cmd` and returns it with the first `http://127.0.0.1:PORT` it prints after `marker`."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if marker in line and "http://127.0.0.1:" in line:
            at = line.index("http://127.0.0.1:")
            url = line[at:].split()[0].rstrip("/")
            # Keep draining its output so that it never blocks on a full pipe.
            threading.Thread(target=lambda: proc.stdout.read(), daemon=True).start()
            return proc, url
    raise RuntimeError(f"{cmd[0]} exited before it listened")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("binaries", nargs="+", type=Path)
    p.add_argument("--latency-ms", type=float, default=50)
    p.add_argument("--days", type=int, default=61, help="days of history before 2024-01-01 (default 61)")
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args()
    for needed in (SIM_BIN, MOTO, *args.binaries):
        if not needed.exists():
            print(f"{needed} is missing: run `cargo build --release --example cube_sim` and `make venv`", file=sys.stderr)
            return 2
    new_column_day = dt.date.fromisoformat(NEW_COLUMN_DAY)
    history_from = (new_column_day - dt.timedelta(days=args.days)).isoformat()
    history_to = (new_column_day - dt.timedelta(days=1)).isoformat()
    sim, sim_url = start_listening(
        [str(SIM_BIN), "serve", "--port", "0", "--page-size", "500", "--seed", "7", "--campaigns", "4",
         "--rows-per-day", "50", "--quirks", "odd-keys,case-keys,new-keys,drift",
         "--new-column-from", NEW_COLUMN_DAY], "listening on")
    moto, moto_url = start_listening([str(MOTO), "-H", "127.0.0.1", "-p", "0"], "Running on")
    try:
        moto_port = int(moto_url.rsplit(":", 1)[1])
        urllib.request.urlopen(urllib.request.Request(f"{moto_url}/lake", method="PUT")).read()
        proxy_port = delaying_proxy(moto_port, args.latency_ms / 1000)
        env = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                   AWS_REGION="us-east-1", AWS_ALLOW_HTTP="true")
        print(f"history {history_from}..{history_to} ({CAMPAIGNS}); {args.latency_ms:g} ms per storage request")
        run = 0
        for _ in range(args.repeat):
            for binary in args.binaries:
                run += 1
                dest = f"s3://lake/run-{run}"
                base = [str(binary), "call-outcomes", "--base-url", sim_url, "--token", "sim-token",
                        "--campaign", CAMPAIGNS, "--dest", dest, "-q"]
                subprocess.run(base + ["--from", history_from, "--to", history_to],
                               env=dict(env, AWS_ENDPOINT_URL=moto_url), check=True)
                with tempfile.NamedTemporaryFile(suffix=".json") as report:
                    started = time.perf_counter()
                    subprocess.run(base + ["--from", NEW_COLUMN_DAY, "--to", NEW_COLUMN_DAY, "--report", report.name],
                                   env=dict(env, AWS_ENDPOINT_URL=f"http://127.0.0.1:{proxy_port}"), check=True)
                    wall = time.perf_counter() - started
                    rewritten = json.loads(Path(report.name).read_text()).get("files_rewritten")
                print(f"{binary}: {wall:.2f} s, {rewritten} files rewritten")
    finally:
        for proc in (sim, moto):
            proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
