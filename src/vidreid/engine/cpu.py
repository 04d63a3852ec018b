"""How many torch threads to train with on a CPU that other processes may share (issue 26).

``benchmarks/bench_threads.py`` measured the demo recipe on 2 cores: with torch's default of one
thread per core, two busy processes beside it cut its throughput 6.7-fold (intra-op threads wait
at every barrier for a thread the scheduler has parked); with one thread, 1.55-fold, while one
thread is 1.65 times slower than two on idle cores (docs/RESULTS.md). ``train.num_threads: -1``
therefore counts the cores other processes keep busy when training starts and leaves them out.
The thread count changes the arithmetic's order, so runs with different counts differ in the
last digits and then in their trajectories: the count chosen is printed and logged.
"""

from __future__ import annotations

import os
import time


def _cpu_times() -> tuple[float, float] | None:
    """(busy, total) jiffies over all cores from /proc/stat; None where there is no /proc/stat."""
    try:
        with open("/proc/stat", "rb") as f:
            fields = [float(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_cores(seconds: float = 0.5) -> float:
    """Cores kept busy over the next ``seconds`` s by every process but this one (which sleeps).

    Returns:
        float in [0, os.cpu_count()]; 0.0 where /proc/stat cannot be read (not Linux).
    """
    a = _cpu_times()
    time.sleep(seconds)
    b = _cpu_times()
    if a is None or b is None or b[1] <= a[1]:
        return 0.0
    cores = os.cpu_count() or 1
    return cores * (b[0] - a[0]) / (b[1] - a[1])


def usable_cores() -> int:
    """The cores this process may run on: ``len(os.sched_getaffinity(0))`` where available (a
    cpuset-limited container or ``taskset`` gives fewer than the machine has), else
    ``os.cpu_count()`` (at least 1)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def auto_threads(cores: int | None = None, busy: float | None = None) -> int:
    """One torch thread per core that no other process keeps busy (at least 1).

    Args:
        cores: the core count (default :func:`usable_cores`).
        busy: cores busy with other work (default: :func:`busy_cores`, measured now for 0.5 s).
    """
    if cores is None:
        cores = usable_cores()
    if busy is None:
        busy = busy_cores()
    return max(1, min(cores, cores - int(round(busy))))
