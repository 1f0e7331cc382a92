//! Hostile inputs shared by the properties: mutations of valid documents and text fragments
//! that parsers tend to get wrong.

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed};

/// A fixed seed, bounded cases and bounded shrinking: the same inputs on every run, and a
/// run that stays within seconds in a debug build on a busy machine. No persistence file: a
/// failure found here becomes a named regression test instead.
pub fn config(cases: u32) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(0x0009_2026),
        failure_persistence: None,
        max_shrink_iters: 4_096,
        max_shrink_time: 20_000,
        ..Config::default()
    }
}

/// Text that breaks naive parsers and terminals: escapes, control characters, a BOM,
/// bidirectional overrides, line and paragraph separators, astral characters, surrogate
/// escapes, numbers beyond every integer and float type, JSON and YAML syntax.
pub const FRAGMENTS: &[&str] = &[
    "\u{0}",
    "\u{7}",
    "\u{1b}[31m",
    "\r",
    "\r\n",
    "\n\n",
    "\t",
    "\u{85}",
    "\u{feff}",
    "\u{202e}",
    "\u{2028}",
    "\u{fffd}",
    "🎯",
    "é",
    "\\",
    "\\u0000",
    "\\ud800",
    "\\udc00\\ud800",
    "\"",
    "'",
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "null",
    "true",
    "-0",
    "1e400",
    "-1e400",
    "1e-400",
    "18446744073709551616",
    "-9223372036854775809",
    "340282366920938463463374607431768211456",
    "0x7fffffffffffffff",
    ".nan",
    ".inf",
    "NaN",
    "Infinity",
    "&a ",
    "*a",
    "<<: *a",
    "!!binary aGk=",
    "!!str ",
    "!custom ",
    "? ",
    "- ",
    "---\n",
    "...\n",
    "|\n",
    ">-\n",
    "%YAML 1.2\n",
    "# ",
];

/// One hostile fragment: from the list, a random character, or random bytes.
pub fn fragment() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::sample::select(FRAGMENTS).prop_map(|s| s.as_bytes().to_vec()),
        1 => any::<char>().prop_map(|c| c.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 1..6),
    ]
}

/// Text for a string field: ordinary, hostile, very long, or empty.
pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z0-9_-]{1,12}",
        2 => prop::collection::vec(prop::sample::select(FRAGMENTS), 1..4)
            .prop_map(|parts| parts.concat()),
        1 => any::<String>(),
        1 => (250usize..300).prop_map(|n| "x".repeat(n)),
        1 => Just(String::new()),
    ]
}

/// `depth` opening brackets, a value, and (unless `closed` is false) as many closing ones.
pub fn nested(depth: usize, open: &str, close: &str, closed: bool) -> String {
    let mut out = open.repeat(depth);
    out.push('1');
    if closed {
        out.push_str(&close.repeat(depth));
    }
    out
}

/// One edit of a document.
#[derive(Debug, Clone)]
pub enum Mutation {
    Truncate(Index),
    FlipByte(Index, u8),
    Insert(Index, Vec<u8>),
    Delete(Index, usize),
    /// Repeats the `len` bytes at the index `times` times (duplicate keys, lines, entries).
    Repeat(Index, usize, usize),
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => any::<Index>().prop_map(Mutation::Truncate),
        2 => (any::<Index>(), 1u8..=255).prop_map(|(at, mask)| Mutation::FlipByte(at, mask)),
        3 => (any::<Index>(), fragment()).prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        1 => (any::<Index>(), 1usize..16).prop_map(|(at, len)| Mutation::Delete(at, len)),
        1 => (any::<Index>(), 1usize..64, 1usize..4)
            .prop_map(|(at, len, times)| Mutation::Repeat(at, len, times)),
    ]
}

/// `document` after each mutation in turn.
pub fn apply(document: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = document.to_vec();
    for mutation in mutations {
        if bytes.is_empty() {
            if let Mutation::Insert(_, fragment) = mutation {
                bytes.extend_from_slice(fragment);
            }
            continue;
        }
        match mutation {
            Mutation::Truncate(at) => bytes.truncate(at.index(bytes.len())),
            Mutation::FlipByte(at, mask) => {
                let at = at.index(bytes.len());
                bytes[at] ^= mask;
            }
            Mutation::Insert(at, fragment) => {
                let at = at.index(bytes.len() + 1);
                bytes.splice(at..at, fragment.iter().copied());
            }
            Mutation::Delete(at, len) => {
                let at = at.index(bytes.len());
                let end = (at + len).min(bytes.len());
                bytes.drain(at..end);
            }
            Mutation::Repeat(at, len, times) => {
                let at = at.index(bytes.len());
                let end = (at + len).min(bytes.len());
                let part = bytes[at..end].repeat(*times);
                bytes.splice(end..end, part);
            }
        }
    }
    bytes
}

/// Documents from `documents`, each with up to `max_mutations` edits.
pub fn mutated(
    documents: impl Strategy<Value = Vec<u8>>,
    max_mutations: usize,
) -> impl Strategy<Value = Vec<u8>> {
    (
        documents,
        prop::collection::vec(mutation(), 0..=max_mutations),
    )
        .prop_map(|(document, mutations)| apply(&document, &mutations))
}

/// The committed inputs of one `cargo fuzz` target (`fuzz/seeds/<target>/`): the seed corpus
/// and every input a fuzzing run found a defect with, replayed by `cargo test` so that a
/// fixed defect stays fixed without a fuzzing toolchain.
pub fn fuzz_seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a readable seed directory").path();
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path.display().to_string(), bytes)
        })
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}
