"""Reading a process's children from /proc (benchmarks and fault tests watch gunicorn's workers)."""

from pathlib import Path


def children(parent_pid):
    """{pid: resident memory in MB} for every live child of `parent_pid`."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue  # it exited while we looked
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("PPid", "").strip() == str(parent_pid):
            found[int(entry.name)] = int(fields.get("VmRSS", "0 kB").split()[0]) / 1024
    return found
