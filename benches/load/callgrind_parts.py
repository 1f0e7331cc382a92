#!/usr/bin/env python3
"""Named parts of a callgrind dump, per request (benches/load/assign_cost.sh).

    callgrind_parts.py DUMP[,DUMP...] REQUESTS

DUMPs are one run's dumps, one per thread (`--separate-threads=yes`). Prints Markdown table
rows "| part | instructions per request | calls per request |": all threads' instructions, the
HTTP worker thread's (the dump in which actix's dispatcher ran), then the inclusive
instructions of each function in PARTS (from `callgrind_annotate --inclusive=yes`, its
whole-function entries, the ones that name their object file; the largest over the threads)
divided by REQUESTS, and how often it was called per request, all threads (the dumps' `calls=` records). A
part whose function did not run is left out. Inclusive counts overlap (the token is inside the
handler).
"""

import re
import subprocess
import sys

# (label, regex on the demangled name). First matching whole-function entry wins.
PARTS = [
    ("actix's HTTP/1 dispatcher (from a request's bytes to its answer's)",
     r"actix_http::h1::dispatcher::InnerDispatcher<.*>::poll_request$"),
    ("request span middleware: its call (span, id, route table; wraps the routing)",
     r"RequestSpanService<S> as actix_service::Service<.*>>::call$"),
    ("  the span (`request_span`)", r"banditd::http::request_span::request_span$"),
    ("  the route template (`RouteTable::template_of`)", r"RouteTable::template_of$"),
    ("  the request id (`RequestId::generated`)", r"RequestId::generated$"),
    ("actix's router (`AppRouting::call`)", r"<actix_web::app_service::AppRouting as .*>::call$"),
    ("metrics (`Metrics::observe_request`)", r"Metrics::observe_request$"),
    ("the query (`AssignQuery` deserialize)", r"AssignQuery>::deserialize$"),
    ("the handler (`assign_one`, engine and answer inside)", r"banditd::http::assign::assign_one::\{\{closure\}\}$"),
    ("  posterior refresh, by the clock (`Engine::rebuild`)", r"Engine>::rebuild::\{\{closure\}\}$"),
    ("  sticky lookup (`sticky_cached`)", r"as banditd::store::api::Store>::sticky_cached$"),
    ("  Thompson draw (`policy::decide`)", r"^banditd::policy::decide$"),
    ("  exposure submission (`count_exposure`)", r"as banditd::store::api::Store>::count_exposure$"),
    ("  token (`TokenSigner::sign`)", r"TokenSigner::sign$"),
    ("    SHA-256 blocks (`compress256`; portable code under valgrind)", r"^sha2::sha256::compress256$"),
    ("    claims JSON (`write_claims`)", r"claims_json::write_claims$"),
    ("  answer (`AssignmentDto::ok_response`)", r"AssignmentDto>::ok_response$"),
    ("store writer thread (`Writer::run`)", r"Writer>::run$"),
    ("heap allocations (`__rust_alloc`)", r"__rustc::__rust_alloc$"),
    ("zeroed allocations (`__rust_alloc_zeroed`)", r"__rustc::__rust_alloc_zeroed$"),
    ("reallocations (`__rust_realloc`)", r"__rustc::__rust_realloc$"),
]


# The global allocator's entry points (calls of them are heap allocations and reallocations).
ALLOCATING = r"^__rustc::__rust_(alloc|alloc_zeroed|realloc)$"


def inclusive(dump):
    out = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--threshold=100", "--auto=no", dump],
        # From `/`: run in the source tree, callgrind_annotate shortens the names of the
        # functions it finds sources for and drops their object file, which marks the
        # whole-function entries below.
        capture_output=True, text=True, check=True, cwd="/").stdout
    entries = []
    for line in out.splitlines():
        m = re.match(r"^\s*([\d,]+) \([^)]*\)\s+(.*)$", line)
        if not m:
            continue
        ir = int(m.group(1).replace(",", ""))
        name = m.group(2)
        if name == "PROGRAM TOTALS":
            entries.append((name, ir))
            continue
        whole = re.search(r" \[[^\]]*\]$", name)
        if not whole:
            continue  # an inlined part listed under its file
        name = name[: whole.start()]
        name = re.sub(r"^[^:]*:(?!:)", "", name)  # the source file
        name = re.sub(r"'\d+$", "", name)  # callgrind's recursion level
        entries.append((name, ir))
    return entries


def calls(dump):
    """Calls per function name, from the dump's cfn= / calls= records."""
    names, counts, target = {}, {}, None
    with open(dump) as f:
        for line in f:
            m = re.match(r"^c?fn=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
            if m:
                if m.group(2):
                    names[m.group(1)] = m.group(2)
                target = names.get(m.group(1)) if line.startswith("cfn=") else None
                continue
            if line.startswith("calls=") and target:
                counts[target] = counts.get(target, 0) + int(line[6:].split()[0])
    return counts


def tally(dumps, group_of):
    """Reads each dump once: the PROGRAM TOTALS and the allocations of each group of dumps
    (`group_of(dump)` names a dump's group), the largest inclusive cost each function has in
    any dump, and each function's calls summed over the dumps."""
    totals, allocs, entries, called = {}, {}, {}, {}
    for dump in dumps:
        group = group_of(dump)
        for name, ir in inclusive(dump):
            if name == "PROGRAM TOTALS":
                totals[group] = totals.get(group, 0) + ir
            elif ir > entries.get(name, 0):
                entries[name] = ir
        for name, n in calls(dump).items():
            name = re.sub(r"'\d+$", "", name)
            called[name] = called.get(name, 0) + n
            if re.search(ALLOCATING, name):
                allocs[group] = allocs.get(group, 0) + n
    return totals, allocs, entries, called


def print_parts(parts, entries, called, requests):
    """One row per part found: the costliest function matching its pattern, per request,
    and that function's calls per request."""
    for label, pattern in parts:
        hits = [(ir, n) for n, ir in entries.items() if re.search(pattern, n)]
        if not hits:
            continue
        ir, name = max(hits)
        n_calls = called.get(name)
        per = f"{n_calls / requests:.2f}" if n_calls is not None else "–"
        print(f"| {label} | {ir / requests:,.0f} | {per} |")


def main():
    dumps, requests = sys.argv[1].split(","), int(sys.argv[2])
    totals, allocs, entries, called = tally(dumps, lambda dump: dump)
    print(f"| everything (all threads) | {sum(totals.values()) / requests:,.0f} | – |")
    worker = next((d for d in dumps if "InnerDispatcher" in open(d).read()), None)
    if worker is not None:
        print(f"| the HTTP worker thread | {totals.get(worker, 0) / requests:,.0f} | – |")
        print(f"| heap allocations on the HTTP worker (`__rust_alloc`, `_zeroed`, `_realloc`)"
              f" | – | {allocs.get(worker, 0) / requests:.2f} |")
    print_parts(PARTS, entries, called, requests)


if __name__ == "__main__":
    main()
