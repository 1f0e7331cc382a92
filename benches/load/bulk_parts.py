#!/usr/bin/env python3
"""Named parts of a bulk ingest callgrind run, per event (benches/load/bulk_cost.sh).

    bulk_parts.py DUMP[,DUMP...] EVENTS
    bulk_parts.py --thread worker|writer|redis DUMP[,DUMP...]

DUMPs are one run's dumps, one per thread (`--separate-threads=yes`). The first form prints
Markdown table rows "| part | instructions per event | calls per event |": all threads, then
each kind of thread (the HTTP worker, where actix's dispatcher ran; the store writer,
`Writer::run`; sled's threads; on Redis (`benches/load/bulk_cost.sh` with REDIS=1) the Redis store's runtime
thread, where the commit task runs; the rest), heap allocations per event (calls of the global
allocator, all threads and on the worker), then the inclusive instructions of each function in
PARTS (`callgrind_annotate --inclusive=yes`, whole-function entries, the largest over the
threads) ÷ EVENTS and how often it was called per event. Inclusive counts overlap (the parse
is inside the handler). The second form prints the dump of that thread.
"""

import re
import sys

from callgrind_parts import tally

# (label, regex on the demangled name). The largest matching whole-function entry is shown.
PARTS = [
    ("actix's HTTP/1 dispatcher (request bytes to answer bytes)",
     r"actix_http::h1::dispatcher::InnerDispatcher<.*>::poll_request$"),
    ("  actix's request decoder (`MessageDecoder::decode`, the body's chunks)",
     r"actix_http::h1::decoder::MessageDecoder<.*>::decode$"),
    ("  the handler (`post_events`)", r"banditd::http::events::post_events::\{\{closure\}\}$"),
    ("    body read (`read_limited`)", r"banditd::http::body::read_limited::\{\{closure\}\}$"),
    ("    NDJSON parse (`parse_ndjson_lines`)", r"banditd::http::events::parse_ndjson_lines$"),
    ("    the events' checks and the store call (`Engine::ingest`)",
     r"banditd::engine::events::<impl banditd::engine::Engine>::ingest::\{\{closure\}\}$"),
    ("      per-event checks (`check_event`)", r"Engine>::check_event$"),
    ("      the experiment lookup (`Engine::loaded`)", r"Engine>::loaded$"),
    ("      metrics per event (`EventRecorder`)", r"EventRecorder::(start|record|target)$"),
    ("      the ops to the store (`apply_ops`)", r"Engine>::apply_ops::\{\{closure\}\}$"),
    ("    the answer (`EventBatchReport` JSON)", r"HttpResponseBuilder::json$"),
    ("store writer thread (`Writer::run`)", r"Writer>::run$"),
    ("  one request's work (`Writer::process`)", r"Writer>::process$"),
    ("    rewards (`apply::RewardRun::apply`)",
     r"banditd::store::apply::(apply_rewards|<?RewardRun>?::apply)$"),
    ("      one reward (`apply_reward`)",
     r"banditd::store::apply::(apply_reward|<?RewardRun>?::apply_reward)$"),
    ("      the id digest (`Txn::event_id_digest`)", r"Txn>::event_id_digest$"),
    ("      the at-most-once check (`Txn::event_id_seen`)", r"Txn>::event_id_seen$"),
    ("      the sticky record read (`Txn::sticky`)", r"Txn>::sticky$"),
    ("      the arm counters (`Txn::update_arm`)", r"Txn>::update_arm$"),
    ("    the request's changes into the batch (`BatchState::merge`)", r"BatchState>::merge$"),
    ("  the group commit (`Writer::commit`)", r"Writer>::commit$"),
    ("    the event-id log values (`event_log::log_values`)", r"event_log::log_values$"),
    ("    kept ids (`DigestSet::insert`)", r"DigestSet>::insert$"),
    ("    sled's batch (`Tree::apply_batch`)", r"sled::tree::Tree>::apply_batch$"),
    ("    sled's flush (`Db::flush` / `Tree::flush`)", r"sled::tree::Tree>::flush$"),
    ("  the replies (`Deferred` / reply sends)", r"banditd::store::command::defer$"),
    ("Redis store thread: the commit task (`commit::run`)", r"banditd::store::redis::commit::run::\{\{closure\}\}$"),
    ("  one group commit (`commit::commit`)", r"banditd::store::redis::commit::commit::\{\{closure\}\}$"),
    ("    the reward steps (`rewards::apply`)", r"banditd::store::redis::rewards::apply::\{\{closure\}\}$"),
    ("      rewards judged with their ids (`direct::apply`)", r"banditd::store::redis::direct::apply::\{\{closure\}\}$"),
    ("        a reward's fields (`Reward::of`)", r"banditd::store::redis::call::Reward::of$"),
    ("        the id digest (`Digester::digest`)", r"Digester>?::digest$"),
    ("        the cached record (`RecordCache::get`)", r"RecordCache>?::get$"),
    ("        the records read before the call (`judged::fetch`)", r"banditd::store::redis::judged::fetch::\{\{closure\}\}$"),
    ("        judging and packing op `B` (`Call::judged_reward`)", r"Call>?::(direct|judged)_reward$"),
    ("        the call's command bytes (`Call::fill`)", r"Call>?::fill$"),
    ("        op `B`'s reply read (`direct::Reply`)", r"direct::Reply>?::(read|answer)$"),
    ("    the answers (`Replier::send`)", r"Replier>?::send$"),
    ("      the cache's forgets (`RecordCache::forget`)", r"RecordCache>?::forget$"),
    ("  the reply's parse (redis-rs `parse_redis_value`)", r"redis::parser::.*parse_redis_value.*$"),
    ("  replies into strings (`FromRedisValue for Vec<String>`)", r"FromRedisValue for alloc::vec::Vec<T>>::from_(owned_)?redis_value$"),
    ("  the command's bytes (redis-rs `Cmd::write_packed_command`)", r"redis::cmd::Cmd>::(get_packed_command|write_packed_command)$"),
    ("heap allocations (`__rust_alloc`)", r"__rustc::__rust_alloc$"),
    ("zeroed allocations (`__rust_alloc_zeroed`)", r"__rustc::__rust_alloc_zeroed$"),
    ("reallocations (`__rust_realloc`)", r"__rustc::__rust_realloc$"),
    ("frees (`__rust_dealloc`)", r"__rustc::__rust_dealloc$"),
    ("memcpy / memmove", r"__memcpy_avx_unaligned_erms|__memmove_avx_unaligned_erms$"),
]


def kind(dump):
    """The kind of thread a dump is of, by the functions that ran in it."""
    text = open(dump).read()
    if "InnerDispatcher" in text:
        return "worker"
    if re.search(r"Writer>::(run|process)", text):
        return "writer"
    if "banditd::store::redis::commit::run" in text:
        return "redis"
    if "sled::" in text:
        return "sled"
    return "other"


def main():
    if sys.argv[1] == "--thread":
        wanted, dumps = sys.argv[2], sys.argv[3].split(",")
        print(next((d for d in dumps if kind(d) == wanted), ""))
        return
    dumps, events = sys.argv[1].split(","), int(sys.argv[2])
    by_kind, allocs_by_kind, entries, called = tally(dumps, kind)
    total = sum(by_kind.values())
    print(f"| everything (all threads) | {total / events:,.0f} | – |")
    for k, label in [("worker", "the HTTP worker thread"), ("writer", "the store writer thread"),
                     ("sled", "sled's threads (flusher, I/O pool)"),
                     ("redis", "the Redis store's thread (`banditd-redis`)"),
                     ("other", "other threads")]:
        if k in by_kind:
            print(f"| {label} | {by_kind[k] / events:,.0f} | – |")
    allocs = sum(allocs_by_kind.values())
    print(f"| heap allocations, all threads (`__rust_alloc`, `_zeroed`, `_realloc`) | – | "
          f"{allocs / events:.2f} |")
    for k in ["worker", "writer", "sled", "redis", "other"]:
        if k in allocs_by_kind:
            print(f"| heap allocations on the {k} thread(s) | – | {allocs_by_kind[k] / events:.2f} |")
    for label, pattern in PARTS:
        hits = [(ir, n) for n, ir in entries.items() if re.search(pattern, n)]
        if not hits:
            continue
        ir, name = max(hits)
        n_calls = sum(n for f, n in called.items() if re.search(pattern, f))
        per = f"{n_calls / events:.3f}" if n_calls else "–"
        print(f"| {label} | {ir / events:,.0f} | {per} |")


if __name__ == "__main__":
    main()
