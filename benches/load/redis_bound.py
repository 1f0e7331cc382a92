#!/usr/bin/env python3
"""What bounds banditd on Redis during a run: samples redis-server and banditd --redis while
another command (run.sh --redis) loads them, for redis_bound.sh.

    redis_bound.py sample REDIS_PORT BANDITD_PORT OUT.tsv
        every 0.5 s until OUT.tsv.stop exists: CLOCK_MONOTONIC time, redis-server's and
        banditd's CPU ticks (all threads, /proc/PID/stat), wrk's (the process named wrk with
        the most CPU), and INFO commandstats' calls and usec of EVALSHA/EVAL/FCALL.
    redis_bound.py report OUT.tsv PERF.txt [TIMELINE]
        cuts the samples into windows where Redis ran script calls (one per Redis scenario),
        and per window prints: CPU of redis-server, banditd and wrk (% of one core), script
        calls/s and Redis's own time per call (INFO's usec), and from `perf script` of the
        fdatasync and epoll_wait tracepoints of redis-server: event-loop passes/s, script
        calls per pass, fdatasync ms per pass and the share of wall time Redis spends in
        fdatasync, in its event loop's work and waiting in epoll_wait. With banditd's commit
        timeline (BANDITD_REDIS_TIMELINE), the commit round's split: Redis round (calls sent
        to replies read), and how many commits were in flight at once.
"""
import os
import re
import subprocess
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")


def pid_on_port(port):
    out = subprocess.run(
        ["ss", "-Hltnp", "sport = :{}".format(port)], capture_output=True, text=True
    ).stdout
    match = re.search(r"pid=(\d+)", out)
    return int(match.group(1)) if match else None


def ticks(pid):
    try:
        with open("/proc/{}/stat".format(pid)) as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


def busiest_wrk():
    best = (None, -1)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/{}/comm".format(entry)) as comm:
                if comm.read().strip() != "wrk":
                    continue
        except OSError:
            continue
        t = ticks(entry)
        if t > best[1]:
            best = (entry, t)
    return best[0]


def script_stats(port):
    out = subprocess.run(
        ["redis-cli", "-p", str(port), "info", "commandstats"], capture_output=True, text=True
    ).stdout
    calls = usec = 0
    for line in out.splitlines():
        match = re.match(r"cmdstat_(evalsha|eval|fcall):calls=(\d+),usec=(\d+)", line)
        if match:
            calls += int(match.group(2))
            usec += int(match.group(3))
    return calls, usec


def sample(redis_port, banditd_port, out_path):
    stop = out_path + ".stop"
    with open(out_path, "w") as out:
        while not os.path.exists(stop):
            redis_pid = pid_on_port(redis_port)
            banditd_pid = pid_on_port(banditd_port)
            if redis_pid is None or banditd_pid is None:
                time.sleep(0.5)
                continue
            wrk = busiest_wrk()
            calls, usec = script_stats(redis_port)
            out.write(
                "{:.3f}\t{}\t{}\t{}\t{}\t{}\n".format(
                    time.clock_gettime(time.CLOCK_MONOTONIC),
                    ticks(redis_pid),
                    ticks(banditd_pid),
                    ticks(wrk) if wrk else 0,
                    calls,
                    usec,
                )
            )
            out.flush()
            time.sleep(0.5)


def windows(rows):
    """Runs of consecutive samples with script calls, at least 2 s long (a scenario's run)."""
    found = []
    current = []
    for before, after in zip(rows, rows[1:]):
        rate = (after[4] - before[4]) / (after[0] - before[0])
        if rate > 50:
            current.append((before, after))
        else:
            if current:
                found.append(current)
            current = []
    if current:
        found.append(current)
    # Drop each window's first and last interval (the run's ramp).
    return [w[1:-1] for w in found if w[-1][1][0] - w[0][0][0] >= 2.0 and len(w) > 3]


def perf_events(path):
    """(time, name, is_enter) of redis-server's main-thread fdatasync and epoll_wait."""
    events = []
    pattern = re.compile(r"(?:^|\s)(\d+\.\d+):\s+syscalls:sys_(enter|exit)_(fdatasync|epoll_wait)")
    with open(path) as lines:
        for line in lines:
            match = pattern.search(line)
            if match:
                events.append((float(match.group(1)), match.group(3), match.group(2) == "enter"))
    return events


def loop_split(events, start, end):
    """Seconds in fdatasync, seconds in epoll_wait, passes (epoll_wait returns) in [start, end)."""
    fsync = wait = 0.0
    passes = 0
    fsyncs = 0
    open_at = {}
    for t, name, enter in events:
        if t < start or t >= end:
            continue
        if enter:
            open_at[name] = t
        elif name in open_at:
            spent = t - open_at.pop(name)
            if name == "fdatasync":
                fsync += spent
                fsyncs += 1
            else:
                wait += spent
                passes += 1
    return fsync, wait, passes, fsyncs


def timeline_split(path):
    """Commit rounds of banditd's timeline: mean Redis round and commits overlapping."""
    rows = []
    with open(path) as lines:
        for line in lines:
            fields = line.split()
            # 8 fields, or 13 with the reward step's (src/store/redis/timeline.rs).
            if len(fields) in (8, 13) and int(fields[6]) > 0:
                rows.append([int(f) for f in fields[:8]])
    if not rows:
        return None
    rounds = [r[4] - r[3] for r in rows]
    whole = [r[5] - r[1] for r in rows]
    # In flight: the largest number of commits whose [sent, replied) overlap.
    marks = sorted([(r[3], 1) for r in rows] + [(r[4], -1) for r in rows])
    depth = most = 0
    for _, step in marks:
        depth += step
        most = max(most, depth)
    return len(rows), sum(rounds) / len(rows), sum(whole) / len(rows), most


def report(samples_path, perf_path, timeline_path=None):
    rows = []
    with open(samples_path) as lines:
        for line in lines:
            f = line.split()
            rows.append([float(f[0])] + [int(x) for x in f[1:]])
    events = perf_events(perf_path) if perf_path and os.path.exists(perf_path) else []
    print(
        "| window | s | Redis CPU % | banditd CPU % | wrk CPU % | calls/s | Redis µs/call "
        "(INFO) | passes/s | calls/pass | fdatasync ms/pass | Redis wall: fsync / work / idle % |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for n, window in enumerate(windows(rows), 1):
        first, last = window[0][0], window[-1][1]
        span = last[0] - first[0]
        cpu = [100 * (last[i] - first[i]) / HZ / span for i in (1, 2, 3)]
        calls = last[4] - first[4]
        usec = last[5] - first[5]
        fsync, wait, passes, fsyncs = loop_split(events, first[0], last[0])
        split = "–"
        per_pass = "–"
        calls_per_pass = "–"
        rate = "–"
        if passes:
            work = span - fsync - wait
            split = "{:.0f} / {:.0f} / {:.0f}".format(
                100 * fsync / span, 100 * work / span, 100 * wait / span
            )
            per_pass = "{:.3f}".format(1000 * fsync / max(fsyncs, 1))
            calls_per_pass = "{:.2f}".format(calls / max(fsyncs, 1))
            rate = "{:.0f}".format(passes / span)
        print(
            "| {} | {:.1f} | {:.0f} | {:.0f} | {:.0f} | {:.0f} | {:.0f} | {} | {} | {} | {} |".format(
                n, span, cpu[0], cpu[1], cpu[2], calls / span, usec / max(calls, 1), rate,
                calls_per_pass, per_pass, split,
            )
        )
    if timeline_path and os.path.exists(timeline_path):
        split = timeline_split(timeline_path)
        if split:
            print()
            print(
                "banditd's commits (whole run): {}, mean Redis round {:.0f} µs, mean commit "
                "round {:.0f} µs, most commits in flight at once {}".format(*split)
            )


if __name__ == "__main__":
    if len(sys.argv) >= 5 and sys.argv[1] == "sample":
        sample(sys.argv[2], sys.argv[3], sys.argv[4])
    elif len(sys.argv) >= 4 and sys.argv[1] == "report":
        report(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None)
    else:
        sys.exit(__doc__)
