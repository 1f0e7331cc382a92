#!/usr/bin/env python3
"""disk_probe.py FILE [THREADS...]: how fast this machine's disk reads FILE from a cold cache.

For each thread count (default 1 2 4 8 16), empties the page cache (root: sync, then
/proc/sys/vm/drop_caches), then reads 20,000 4 KiB blocks at random offsets of FILE with that
many threads (POSIX_FADV_RANDOM: no read-ahead) and prints reads per second; then empties the
cache again and reads FILE front to back in 8 MiB reads and prints MB/s. A restart from a cold
page cache is bound by one or the other (benches/load/results/restart-s22-2026-12-02.md).
"""
import os
import random
import subprocess
import sys
import threading
import time

READS = 20_000


def drop_caches():
    subprocess.run(["sync"], check=True)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def random_reads(path, threads):
    size = os.path.getsize(path)
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)

    def work(seed):
        rng = random.Random(seed)
        for _ in range(READS // threads):
            os.pread(fd, 4096, rng.randrange(0, size // 4096) * 4096)

    started = time.time()
    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.time() - started
    os.close(fd)
    done = READS // threads * threads
    print(f"random 4 KiB reads, {threads} threads: {done / elapsed:,.0f}/s "
          f"({elapsed / done * threads * 1e6:.0f} µs each)", flush=True)


def sequential(path):
    started, total = time.time(), 0
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(8 << 20):
            total += len(chunk)
    elapsed = time.time() - started
    print(f"front to back, 8 MiB reads: {total / 1e6:,.0f} MB in {elapsed:.1f} s, "
          f"{total / elapsed / 1e6:,.0f} MB/s", flush=True)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    path = sys.argv[1]
    if not os.access("/proc/sys/vm/drop_caches", os.W_OK):
        sys.exit("disk_probe.py empties the page cache through /proc/sys/vm/drop_caches: run it as root")
    for threads in [int(n) for n in sys.argv[2:]] or [1, 2, 4, 8, 16]:
        drop_caches()
        random_reads(path, threads)
    drop_caches()
    sequential(path)


if __name__ == "__main__":
    main()
