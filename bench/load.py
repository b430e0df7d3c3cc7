"""The load process for bench/rush.py: a separate process on loopback, bounded in count and time.

    python bench/load.py rush URL PLAN.json        # every request fired at the same moment
    python bench/load.py steady URL PLAN.json      # closed loop for N seconds at C concurrency

PLAN.json holds the requests ({"method", "path", "token", "json", "forwarded_for"}). Prints one
JSON line of results: per request status and latency (rush) or counts and rate (steady).
"""

import asyncio
import json
import sys
import time

import aiohttp

MAX_SECONDS = 120  # hard bound on any run


async def _send(session, base, request):
    headers = {}
    if request.get("token"):
        headers["Authorization"] = f"Bearer {request['token']}"
    if request.get("forwarded_for"):
        headers["X-Forwarded-For"] = request["forwarded_for"]
    started = time.perf_counter()
    try:
        async with session.request(
            request.get("method", "GET"), base + request["path"], json=request.get("json"), headers=headers
        ) as response:
            body = await response.read()
            code = None
            if response.status >= 400:
                try:
                    code = json.loads(body)["error"]["code"]
                except (ValueError, KeyError, TypeError):
                    code = body[:80].decode(errors="replace")
            return response.status, code, started, time.perf_counter()
    except (TimeoutError, aiohttp.ClientError) as exc:
        return 0, repr(exc)[:80], started, time.perf_counter()


async def rush(base, requests):
    """Open every connection first (as phones that just loaded the page hold one), then release
    all requests at once; each latency is from its release to its answer."""
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    gate = asyncio.Event()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def connect():
            async with session.get(base + "/ping") as response:
                await response.read()

        # All at once, so each holds its own connection; they return to the pool, kept alive.
        await asyncio.wait_for(asyncio.gather(*(connect() for _ in requests)), MAX_SECONDS)

        async def one(request):
            await gate.wait()
            return await _send(session, base, request)

        tasks = [asyncio.create_task(one(r)) for r in requests]
        await asyncio.sleep(0.2)
        t0 = time.perf_counter()
        gate.set()
        results = await asyncio.wait_for(asyncio.gather(*tasks), MAX_SECONDS)
    return [
        {"status": s, "code": c, "latency": end - start, "finished": end - t0} for s, c, start, end in results
    ]


async def steady(base, requests, concurrency, seconds):
    """A closed loop: `concurrency` workers each send the next request as soon as one returns."""
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    queue = iter(requests)
    statuses, latencies = {}, []
    stop_at = time.perf_counter() + min(seconds, MAX_SECONDS)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker():
            while time.perf_counter() < stop_at:
                request = next(queue, None)
                if request is None:
                    return
                status, _code, start, end = await _send(session, base, request)
                statuses[status] = statuses.get(status, 0) + 1
                latencies.append(end - start)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return {"statuses": statuses, "count": len(latencies), "seconds": elapsed, "latencies": latencies}


def main():
    mode, base, plan_path = sys.argv[1:4]
    with open(plan_path) as f:
        plan = json.load(f)
    if mode == "rush":
        result = asyncio.run(rush(base, plan["requests"]))
    else:
        result = asyncio.run(steady(base, plan["requests"], plan["concurrency"], plan["seconds"]))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
