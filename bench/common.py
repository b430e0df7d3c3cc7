"""Shared by the benchmarks: a fresh database per run, percentiles, the machine's description."""

import os
import platform
import uuid
from urllib.parse import urlsplit, urlunsplit

PG_SERVER = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def fresh_database(kind, tmp):
    """(url, handle): a temporary SQLite file, or a new PostgreSQL database on BENCH_PG_URL."""
    if kind == "sqlite":
        return f"sqlite:///{tmp}/bench.db", None
    import psycopg2

    name = f"loafy_bench_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(PG_SERVER)
    conn.autocommit = True
    conn.cursor().execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return urlunsplit(urlsplit(PG_SERVER)._replace(path=f"/{name}")), (PG_SERVER, name)


def drop_database(handle):
    if handle is None:
        return
    import psycopg2

    server, name = handle
    conn = psycopg2.connect(server)
    conn.autocommit = True
    conn.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"
