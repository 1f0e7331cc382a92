#!/usr/bin/env python3
"""One run's callgrind dumps by thread and by part, per request (benches/load/assign_write_cost.sh).

    assign_write_parts.py DUMP[,DUMP...] REQUESTS COMMITS

DUMPs are one run's dumps, one per thread (`--separate-threads=yes`). Each dump is put in a
thread group by what ran in it: the HTTP worker (actix's dispatcher), the store writer
(`Writer::run`), the redo log's checkpoint thread, sled's I/O pool, and the rest. Prints
Markdown table rows:

  | group | instructions per request | per commit | heap allocations per request |

then "| part | instructions per request | calls per request |" rows for the named PARTS
(inclusive instructions of the whole-function entry, the largest over the dumps; calls over
all dumps; benches/load/callgrind_parts.py reads the dumps the same way).
"""

import re
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from callgrind_parts import print_parts, tally  # noqa: E402

GROUPS = [
    ("HTTP worker", r"InnerDispatcher"),
    # `Writer::run` is inlined into the thread's start, and `process` may be too (event15's
    # results, benches/load/results/event15-2026-12-01-s15.md); `commit` has not been.
    ("store writer", r"Writer>?::(process|commit)"),
    ("checkpoint", r"wal_checkpoint::checkpoint"),
    ("sled I/O pool", r"sled::threadpool::perform_work"),
]

# Not the request's own: the posterior refresh runs by the clock (once per 100 ms, and a run
# under valgrind lasts seconds), and valgrind runs SHA-256's portable code (natively SHA-NI).
CLOCKED = r"Engine>::rebuild::\{\{closure\}\}$"
SHA = r"^sha2::sha256::compress256$"

PARTS = [
    ("  posterior refresh, by the clock (`Engine::rebuild`)", CLOCKED),
    ("the handler: assign (`assign_one`)", r"banditd::http::assign::assign_one::\{\{closure\}\}$"),
    ("the handler: events (`post_events`)", r"banditd::http::events::.*post_events.*\{\{closure\}\}$"),
    ("  token (`TokenSigner::sign`)", r"TokenSigner>?::sign$"),
    ("    SHA-256 blocks (`compress256`; portable code under valgrind)", r"^sha2::sha256::compress256$"),
    ("  the store's insert call (`insert_sticky`)", r"as banditd::store::api::Store>::insert_sticky$"),
    ("  the store's reward call (`apply_rewards`)", r"as banditd::store::api::Store>::apply_rewards$"),
    ("  answer (`AssignmentDto::ok_response`)", r"AssignmentDto>?::ok_response$"),
    ("writer: one batch (`Writer::process`)", r"Writer>?::process$"),
    ("  per request: insert (`apply::insert_sticky`)", r"banditd::store::apply::insert_sticky$"),
    ("  per request: rewards (`RewardRun::apply`; before: `apply::apply_rewards`)",
     r"banditd::store::apply::(apply_rewards|RewardRun>?::apply)$"),
    ("    the delay bin (`DelayCounts::count`)", r"DelayCounts>?::count$"),
    ("      its read (`Reads::get`, before: `Txn::get`)", r"overlay::<?(Reads|Txn)>?::get$"),
    ("    the key (`sled_delay::bin_key`)", r"banditd::store::sled_delay::bin_key$"),
    ("  per run: rewards written (`RewardRun::finish`)", r"RewardRun>?::finish$"),
    ("  per txn: into the batch (`BatchState::merge`)", r"BatchState>?::merge$"),
    ("  commit (`Writer::commit`)", r"Writer>?::commit$"),
    ("    unit log entries (`LogWriter::push_record`)", r"LogWriter>?::push_record$"),
    ("    redo record: encode, write, sync (`Wal::append`)", r"Wal>?::append$"),
    ("    apply to sled (`Wal::apply_last`)", r"Wal>?::apply_last$"),
    ("    sticky table (`StickyTable::apply`)", r"StickyTable>?::apply$"),
    ("    counters published (`Writer::publish`)", r"Writer>?::publish$"),
    ("    checkpoint bookkeeping (`Wal::after_commit`)", r"Wal>?::after_commit$"),
    ("  answers (`defer` closures)", r"banditd::store::command::defer::<.*>::\{\{closure\}\}$"),
    ("heap allocations (`__rust_alloc`)", r"__rustc::__rust_alloc$"),
    ("heap frees (`__rust_dealloc`)", r"__rustc::__rust_dealloc$"),
    ("reallocations (`__rust_realloc`)", r"__rustc::__rust_realloc$"),
]


def group_of(dump):
    text = open(dump).read()
    for name, pattern in GROUPS:
        if re.search(pattern, text):
            return name
    return "rest"


def main():
    dumps, requests, commits = sys.argv[1].split(","), int(sys.argv[2]), int(sys.argv[3])
    by_group, allocs, entries, called = tally(dumps, group_of)
    commits = max(commits, 1)
    for group in [g for g, _ in GROUPS] + ["rest"]:
        ir = by_group.get(group, 0)
        print(f"| {group} | {ir / requests:,.0f} | {ir / commits:,.0f} | "
              f"{allocs.get(group, 0) / requests:.2f} |")
    worker_less = by_group.get("HTTP worker", 0) - sum(
        max((ir for n, ir in entries.items() if re.search(p, n)), default=0) for p in (CLOCKED, SHA))
    print(f"| HTTP worker without the refresh and the SHA-256 blocks | {worker_less / requests:,.0f} "
          f"| – | – |")
    total = sum(by_group.values())
    print(f"| **all threads** | **{total / requests:,.0f}** | {total / commits:,.0f} | "
          f"{sum(allocs.values()) / requests:.2f} |")
    print()
    print("| part | instructions per request | calls per request |")
    print("| --- | ---: | ---: |")
    print_parts(PARTS, entries, called, requests)

if __name__ == "__main__":
    main()
