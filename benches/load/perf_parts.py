#!/usr/bin/env python3
"""Splits a perf profile of banditd into the parts of a request (benches/load/results/hot-2026-11-30-s6.md).

Usage: perf script -i perf.data -F comm,ip,sym,dso | [ONLY_COMM=actix] perf_parts.py [CPU_US_PER_REQUEST]

Each sample goes to the part of the innermost frame (leaf first) that matches a part's pattern;
a sample whose leaf is in the kernel counts as kernel work. With CPU_US_PER_REQUEST, each share
is also given in microseconds per request. ONLY_COMM keeps the samples of matching threads.
"""
import re, sys, collections
CATS = [
 ("kernel (TCP, epoll, syscalls)", None),
 ("token: claims JSON, HMAC, base64", r"TokenSigner::sign|Engine>::sign\b|claims_json|sha2::|hmac::|base64::"),
 ("answer JSON + response build", r"assign_json|ok_response|AssignmentDto"),
 ("store: sticky lookup", r"StickyTable|sticky_cached|sticky_slots|record_cache|cache_get"),
 ("store: commit (insert/wait/writer)", r"insert_sticky|store::writer|store::wave|store::sled|sled::|store::redis::commit|oneshot|count_exposure"),
 ("engine: policy sampling", r"policy::|rand_distr|stats::|Gamma|Beta"),
 ("engine: refresh/snapshot", r"refresh_if_stale|rebuild|Snapshot|claim_refresh"),
 ("engine: assign rest", r"engine::assign|Engine::served|engine::live|arc_swap|Engine>::assign"),
 ("metrics (engine+http)", r"metrics::|prometheus_client|Recorded<|RecordRequests|observe_request"),
 ("extractors (query, path, auth, unit)", r"FromRequest|serde_urlencoded|AssignQuery|PathDeserializer|Unit::parse|parse_unit|auth::|form_urlencoded"),
 ("router (actix regex, route table)", r"regex_automata|ResourceDef|capture_match_info|RouteTable|match_pattern|actix_router|ResourceMap"),
 ("request span + log layers", r"tracing_subscriber|tracing_core|tracing::span|request_span|RequestSpan|Traced<|LazyFields|RequestId|uuid::|request_id::"),
 ("request layers (query check, no-store, problem bodies, CORS cond.)", r"http::layers|check_query|err_handlers|ErrorHandlers|condition::|problem_bodies"),
 ("actix HTTP/1 dispatcher (parse, encode, write)", r"actix_http|actix_web|actix_server|actix_service|actix_rt|httparse|bytes::"),
 ("tokio/mio runtime", r"tokio::|mio::"),
]
comp = [(n, re.compile(p) if p else None) for n, p in CATS]
counts = collections.Counter(); total = 0
thread_counts = collections.Counter()
frames = []; comm = None
import os
ONLY = os.environ.get("ONLY_COMM")
def flush():
    global total
    if not frames: return
    thread_counts[comm] += 1
    if ONLY and not re.search(ONLY, comm or ""): return
    total += 1
    leaf = frames[0]
    if leaf.endswith("([kernel.kallsyms])") or "kallsyms" in leaf:
        counts[CATS[0][0]] += 1; return
    for f in frames:
        for n, c in comp[1:]:
            if c.search(f):
                counts[n] += 1; return
    counts["other (libc/alloc outside the above, unknown)"] += 1
for line in sys.stdin:
    if not line.strip():
        flush(); frames = []; continue
    if not line.startswith((" ", "\t")):
        flush(); frames = []; comm = line.split()[0]; continue
    frames.append(line.strip())
flush()
us = float(sys.argv[1]) if len(sys.argv) > 1 else None
allt = sum(thread_counts.values())
print(f"samples: {total} of {allt}; threads: " + ", ".join(f"{k} {v*100/allt:.1f}%" for k, v in thread_counts.most_common(8)))
for n, c in counts.most_common():
    extra = f" | {c/total*us:.2f}" if us else ""
    print(f"| {n} | {c*100/total:.1f}%{extra} |")
