#!/usr/bin/env python3
"""fdatasync after appending vs after overwriting already-written blocks, on this machine's disk.

    python3 benches/load/fsync_grow.py [DIR]

Writes N records of SIZE bytes (a group commit's log bytes), each followed by fdatasync, to a
file in DIR (default: the current directory, so the data dir's filesystem), twice per mode and
alternated: `grow` appends past the file's end (the file's size changes on every sync, as sled's
log does when it starts a segment past the end); `over` first writes the whole range with zeros
and syncs, then overwrites it (what `store::log_room` arranged for sled's log, and `src/store/wal.rs` for the redo log). Prints the wall time per
fdatasync and the device's written KiB per fdatasync (`/sys/block/<dev>/stat`, whole device:
other writers on the machine add to it).
"""
import os
import sys
import time

N, SIZE = 300, 2560


def device_sectors(path):
    dev = os.stat(path).st_dev
    name = os.path.basename(os.path.realpath(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}"))
    stat = f"/sys/block/{name}/stat"
    if not os.path.exists(stat):  # a partition: its disk's counters
        stat = f"/sys/class/block/{name}/stat"
    return int(open(stat).read().split()[6])


def run(directory, mode):
    path = os.path.join(directory, "fsync_grow.dat")
    fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_RDWR)
    try:
        if mode == "over":
            os.pwrite(fd, b"\0" * (N * SIZE + 4096), 0)
            os.fsync(fd)
        record = b"x" * SIZE
        sectors, started = device_sectors(path), time.perf_counter()
        for i in range(N):
            os.pwrite(fd, record, i * SIZE)
            os.fdatasync(fd)
        wall = time.perf_counter() - started
        written = (device_sectors(path) - sectors) * 512
    finally:
        os.close(fd)
        os.unlink(path)
    print(f"{mode}: {wall / N * 1e6:.0f} µs per fdatasync, {written / 1024 / N:.1f} KiB written per fdatasync")


if __name__ == "__main__":
    directory = sys.argv[1] if len(sys.argv) > 1 else "."
    for mode in ["grow", "over", "grow", "over", "grow", "over"]:
        run(directory, mode)
