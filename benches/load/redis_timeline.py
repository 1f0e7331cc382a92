#!/usr/bin/env python3
"""Summarises a Redis commit timeline (src/store/redis/timeline.rs) for redis_timeline.sh.

Each line: oldest woken closed sent replied answered commands calls (µs since the store
opened), and since session 15 the reward step: begun built rewarded judged rewards. Prints commits per second, commands per commit, and each phase of a commit's round
as p10/p50/p90/mean: how long its oldest command waited before the commit task woke, the
gather (wake to closing the batch), building the calls, the Redis round
(calls handed over to every reply read), answering, and the idle time between one commit's
answers and the next wake; the Redis round's median by commit size. Then the Redis round
fitted as a fixed part plus a part per command.
For the commits with rewards judged by single-primary calls (a 13-field line whose `rewards` is
above 0), the reward step's split: sticky replies to its start, building the reward calls,
their Redis round (handed over to replies read), setting the outcomes (decoding), and the rest
up to `answered` (fallbacks, epoch starts, answers), with the per-reward means.
"""
import sys


def quantiles(values):
    values = sorted(values)
    n = len(values)
    return "p10 {} p50 {} p90 {} mean {:.0f}".format(
        values[n // 10], values[n // 2], values[9 * n // 10], sum(values) / n
    )


def main(path):
    rows = []
    with open(path) as lines:
        for line in lines:
            fields = line.split()
            if len(fields) in (8, 13) and int(fields[6]) > 0:
                rows.append([int(field) for field in fields])
    if len(rows) < 10:
        print("too few commits with commands: {}".format(len(rows)))
        return
    span = (rows[-1][5] - rows[0][1]) / 1e6
    n = len(rows)
    commands = sum(row[6] for row in rows)
    print(
        "commits {} in {:.2f} s: {:.0f}/s; {:.0f} commands/s; {:.1f} commands and {:.2f} "
        "script calls per commit".format(
            n, span, n / span, commands / span, commands / n, sum(r[7] for r in rows) / n
        )
    )
    print("commands per commit:", quantiles([row[6] for row in rows]))
    buckets = {}
    for row in rows:
        buckets.setdefault(min(row[6] // 8, 8), []).append(row[4] - row[3])

    def label(b):
        return "{}-{}".format(b * 8, b * 8 + 7 if b < 8 else "")

    print(
        "commits by size:",
        " ".join(
            "{}: {:.0f}%".format(label(b), 100 * len(r) / n) for b, r in sorted(buckets.items())
        ),
    )
    # Whether a bigger commit waits longer for Redis (the script's work grows with it) or the
    # round is fixed (fsync and wake-ups): results/s16-round-2026-12-01.md.
    print(
        "redis round p50 µs by size:",
        " ".join(
            "{}: {}".format(label(b), sorted(r)[len(r) // 2]) for b, r in sorted(buckets.items())
        ),
    )
    print("queued before wake µs:", quantiles([r[1] - r[0] for r in rows]))
    print("gather µs:", quantiles([r[2] - r[1] for r in rows]))
    print("build µs:", quantiles([r[3] - r[2] for r in rows]))
    print("redis round µs:", quantiles([r[4] - r[3] for r in rows]))
    print("answer µs:", quantiles([r[5] - r[4] for r in rows]))
    print("idle to next wake µs:", quantiles([rows[i + 1][1] - rows[i][5] for i in range(n - 1)]))
    print("cycle µs:", quantiles([rows[i + 1][5] - rows[i][5] for i in range(n - 1)]))
    xs = [row[6] for row in rows]
    ys = [row[4] - row[3] for row in rows]
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
    print("redis round fit: {:.0f} µs + {:.1f} µs per command".format(my - slope * mx, slope))
    rewarded = [r for r in rows if len(r) == 13 and r[12] > 0]
    if rewarded:
        count = sum(r[12] for r in rewarded)
        print(
            "commits with direct reward calls: {}, {:.0f} rewards per commit".format(
                len(rewarded), count / len(rewarded)
            )
        )
        for label, first, last in [
            ("  sticky replies to reward step", 4, 8),
            ("  reward calls built", 8, 9),
            ("  reward calls' redis round", 9, 10),
            ("  outcomes set (decode)", 10, 11),
            ("  rest to answered", 11, 5),
        ]:
            spans = [r[last] - r[first] for r in rewarded]
            print(
                "{} µs: {}; {:.2f} µs per reward".format(
                    label, quantiles(spans), sum(spans) / count
                )
            )


if __name__ == "__main__":
    main(sys.argv[1])
