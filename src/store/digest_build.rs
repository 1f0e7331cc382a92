//! How a restart builds the kept event ids' table (`digest_table`) from the event log: the
//! replay threads collect the digests into buckets by their top bits ([`DigestBuckets`]),
//! then [`build`] sorts one bucket at a time in a small cache-resident array and places them
//! in ascending order (`digest_table::Placement`).
//!
//! **Why.** The replay used to collect every digest into one array, sort it with two counting
//! passes through a second array as long, and place it: at 100M digests (50M ids, each
//! crediting a token) the sort was 23% of a restart's CPU and the kernel zeroing the pages of
//! the two arrays and the table another 22% (`benches/load/PROFILES.md`, eighth round). Here
//! the collection itself is the one scattering pass, into one array with room for the
//! expected digests, and the sort of a bucket (a few thousand digests) never leaves the cache.
//!
//! **Buckets.** Keyed digests are uniform, so with `n` expected digests in `2^b` buckets a
//! bucket's count is binomial with mean `μ = n / 2^b` (~3,000–6,000, 24–48 KiB) and standard
//! deviation below `√μ`; a bucket has room for `μ + 6√μ + 16`, ~9% over the mean, which a
//! bucket exceeds with probability below 10^-9. A digest that finds its bucket full goes to an
//! overflow list, sorted at the end ([`sort_digests`]) and merged into the buckets' ascending
//! order, so a stale size hint, or no hint at all (everything overflows: the old path), costs
//! time, never exactness.
//!
//! **Several threads.** The replay threads all write into the same buckets. A thread claims
//! [`CLAIM`] places of a bucket at a time (one atomic add on the bucket's count) and fills them
//! with plain stores, so the writes, each a cache miss somewhere in 800 MB, overlap in the
//! store buffer; an atomic add per digest would drain it each time (a locked instruction waits
//! for every earlier store), which made the collection about 3× slower. A thread's last claim
//! in a bucket may end part-filled: it hands back those holes with its overflow
//! ([`Collected`]). The array is `table_memory::ZeroedWords` on huge pages: on 4 KiB pages
//! each write also cost a TLB miss (36% of a restart's CPU in a first version that gave each
//! thread an array of its own on small pages).

use std::sync::atomic::{AtomicUsize, Ordering};

use super::digest_table::{DigestTable, Placement};
use super::table_memory::ZeroedWords;

/// The mean digests per bucket the buckets aim at (module docs).
const BUCKET_MEAN: usize = 4096;
/// Places of a bucket a thread claims at once (module docs).
const CLAIM: usize = 64;
/// Below this many expected digests, no buckets: everything goes to the overflow list.
const MIN_BUCKETED: usize = 1 << 16;

/// The shape of [`DigestBuckets`]: `2^bits` buckets, each with room for `room` digests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    bits: u32,
    room: usize,
}

impl Layout {
    /// The layout for `expected` digests at about `mean` per bucket, filled by `threads`
    /// collectors; no buckets (`room` 0) for fewer than `min_bucketed`.
    fn new(expected: usize, mean: usize, min_bucketed: usize, threads: usize) -> Layout {
        if expected < min_bucketed {
            return Layout { bits: 1, room: 0 };
        }
        // At least one bucket per `mean`, at most 2^32 buckets (a digest's top bits index them).
        let bits = (expected / mean).max(2).ilog2().min(32);
        let mean = expected >> bits;
        let spread = 6 * (mean as f64).sqrt().ceil() as usize;
        // Each thread's part-filled last claim leaves up to CLAIM places of a bucket empty.
        Layout {
            bits,
            room: (mean + spread + threads.max(1) * CLAIM + 16).min(u32::MAX as usize),
        }
    }

    fn buckets(&self) -> usize {
        1 << self.bits
    }

    fn bucket(&self, digest: u64) -> usize {
        (digest >> (64 - self.bits)) as usize
    }
}

/// The replay's digests by bucket (module docs), filled through [`DigestCollector`]s.
pub struct DigestBuckets {
    layout: Layout,
    /// Bucket `b`'s digests are `words[b · room ..][.. min(counts[b], room)]`.
    words: ZeroedWords,
    /// Digests that went to each bucket, the overflowed ones included.
    counts: Vec<AtomicUsize>,
}

impl DigestBuckets {
    /// Buckets with room for `expected` digests (the last size kept, `size_hint`), collected
    /// by `threads` collectors.
    pub fn new(expected: usize, threads: usize) -> DigestBuckets {
        DigestBuckets::with_layout(Layout::new(expected, BUCKET_MEAN, MIN_BUCKETED, threads))
    }

    /// `2^bits` buckets of `room` digests each: the tests' small buckets, which overflow at
    /// small sizes.
    #[cfg(test)]
    pub fn with_buckets(bits: u32, room: usize) -> DigestBuckets {
        DigestBuckets::with_layout(Layout { bits, room })
    }

    fn with_layout(layout: Layout) -> DigestBuckets {
        let words = if layout.room == 0 {
            None
        } else {
            layout
                .buckets()
                .checked_mul(layout.room)
                .and_then(ZeroedWords::new)
        };
        let (layout, words) = match words {
            Some(words) => (layout, words),
            // No buckets (or no memory for them): the overflow lists take everything.
            None => (Layout { bits: 1, room: 0 }, ZeroedWords::empty()),
        };
        DigestBuckets {
            layout,
            words,
            counts: (0..layout.buckets()).map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    /// A collector for one thread.
    pub fn collector(&self) -> DigestCollector<'_> {
        DigestCollector {
            buckets: self,
            words: self.words.as_atomic(),
            claims: vec![(0, 0); self.layout.buckets()],
            overflow: Vec::new(),
        }
    }

    /// Bucket `bucket`'s digests: its claimed places less the collectors' holes in them
    /// (`holes` in order).
    fn bucket_parts<'a>(&'a self, bucket: usize, holes: &[(u32, u32)]) -> Vec<&'a [u64]> {
        let start = bucket * self.layout.room;
        let filled = self.counts[bucket]
            .load(Ordering::Relaxed)
            .min(self.layout.room);
        let mut parts = Vec::with_capacity(holes.len() + 1);
        let mut from = 0;
        for &(hole_from, hole_to) in holes {
            parts.push(&self.words[start + from..start + hole_from as usize]);
            from = hole_to as usize;
        }
        parts.push(&self.words[start + from..start + filled]);
        parts
    }
}

/// One replay thread's way into the shared [`DigestBuckets`]: its current claim in each bucket
/// (next place, end) and its own overflow list.
pub struct DigestCollector<'a> {
    buckets: &'a DigestBuckets,
    words: &'a [std::sync::atomic::AtomicU64],
    claims: Vec<(u32, u32)>,
    overflow: Vec<u64>,
}

impl DigestCollector<'_> {
    pub fn push(&mut self, digest: u64) {
        let layout = self.buckets.layout;
        let bucket = layout.bucket(digest);
        let claim = &mut self.claims[bucket];
        if claim.0 == claim.1 {
            // Each place is claimed once: no two claims overlap.
            let start = self.buckets.counts[bucket].fetch_add(CLAIM, Ordering::Relaxed);
            if start >= layout.room {
                self.overflow.push(digest);
                return;
            }
            // `room` fits a u32 (`Layout::new`).
            *claim = (start as u32, (start + CLAIM).min(layout.room) as u32);
        }
        self.words[bucket * layout.room + claim.0 as usize].store(digest, Ordering::Relaxed);
        claim.0 += 1;
    }

    /// What [`build`] needs besides the buckets: the overflow list and the part of each last
    /// claim left empty.
    pub fn finish(self) -> Collected {
        let holes = self
            .claims
            .iter()
            .enumerate()
            .filter(|(_, claim)| claim.0 < claim.1)
            .map(|(bucket, &(from, to))| (bucket, from, to))
            .collect();
        Collected {
            overflow: self.overflow,
            holes,
        }
    }
}

/// A finished [`DigestCollector`]'s digests outside the buckets, and its holes in them.
pub struct Collected {
    overflow: Vec<u64>,
    /// (bucket, first empty place, end of the claim).
    holes: Vec<(usize, u32, u32)>,
}

/// The table of every digest in `buckets` and in the threads' `collected` (repeats once), at
/// the fitted load (module docs). The threads that filled the buckets must be done (joined).
pub fn build(buckets: DigestBuckets, collected: Vec<Collected>) -> DigestTable {
    let layout = buckets.layout;
    let mut overflow = Vec::new();
    let mut holes = Vec::new();
    for mut one in collected {
        overflow.append(&mut one.overflow);
        holes.append(&mut one.holes);
    }
    holes.sort_unstable();
    let empty: usize = holes
        .iter()
        .map(|&(_, from, to)| (to - from) as usize)
        .sum();
    let claimed: usize = (0..layout.buckets())
        .map(|bucket| {
            buckets.counts[bucket]
                .load(Ordering::Relaxed)
                .min(layout.room)
        })
        .sum();
    sort_digests(&mut overflow);
    let mut placement = Placement::new(claimed - empty + overflow.len());
    let mut overflow = overflow.into_iter().peekable();
    if layout.room > 0 {
        let mut sorter = BucketSorter::new(layout);
        let mut bucket_holes = holes.chunk_by(|a, b| a.0 == b.0).peekable();
        let mut in_bucket = Vec::new();
        for bucket in 0..layout.buckets() {
            in_bucket.clear();
            if let Some(these) = bucket_holes.next_if(|these| these[0].0 == bucket) {
                in_bucket.extend(these.iter().map(|&(_, from, to)| (from, to)));
            }
            let parts = buckets.bucket_parts(bucket, &in_bucket);
            for &digest in sorter.sort(&parts) {
                while let Some(smaller) = overflow.next_if(|&kept| kept < digest) {
                    placement.push(smaller);
                }
                placement.push(digest);
            }
        }
    }
    drop(buckets);
    for digest in overflow {
        placement.push(digest);
    }
    placement.finish()
}

/// Sorts one bucket's digests into a scratch array that stays in the
/// cache: one counting pass on the bits below the bucket's (about one digest per counter),
/// then an insertion sort that only meets digests sharing a counter.
struct BucketSorter {
    shift: u32,
    mask: u64,
    counts: Vec<u32>,
    scratch: Vec<u64>,
}

impl BucketSorter {
    fn new(layout: Layout) -> BucketSorter {
        let sub_bits = layout
            .room
            .next_power_of_two()
            .ilog2()
            .clamp(1, 64 - layout.bits);
        BucketSorter {
            shift: 64 - layout.bits - sub_bits,
            mask: (1u64 << sub_bits) - 1,
            counts: vec![0; (1 << sub_bits) + 1],
            scratch: Vec::new(),
        }
    }

    fn sort(&mut self, parts: &[&[u64]]) -> &[u64] {
        let bucket = || parts.iter().flat_map(|part| part.iter());
        self.scratch.clear();
        self.scratch
            .resize(parts.iter().map(|part| part.len()).sum(), 0);
        self.counts.fill(0);
        let key = |digest: u64| ((digest >> self.shift) & self.mask) as usize + 1;
        for &digest in bucket() {
            self.counts[key(digest)] += 1;
        }
        for at in 1..self.counts.len() {
            self.counts[at] += self.counts[at - 1];
        }
        for &digest in bucket() {
            let at = &mut self.counts[key(digest) - 1];
            self.scratch[*at as usize] = digest;
            *at += 1;
        }
        insertion_sort(&mut self.scratch);
        &self.scratch
    }
}

/// Sorts a nearly sorted slice: each digest moves back past the larger ones before it.
fn insertion_sort(digests: &mut [u64]) {
    for i in 1..digests.len() {
        let digest = digests[i];
        let mut j = i;
        while j > 0 && digests[j - 1] > digest {
            digests[j] = digests[j - 1];
            j -= 1;
        }
        digests[j] = digest;
    }
}

/// Sorts `digests` ascending. Below 2^16 digests, `sort_unstable`; above, two stable counting
/// passes on the top 32 bits (16 at a time, the lower half first, through a second array),
/// which leaves out of order only digests sharing their top 32 bits (n / 2^32 others per
/// digest on average), then an insertion sort that puts those in order and otherwise only
/// compares neighbours. About 1 s for 90M digests where a comparison sort takes several.
pub fn sort_digests(digests: &mut Vec<u64>) {
    if digests.len() < 1 << 16 {
        digests.sort_unstable();
        return;
    }
    let mut other = vec![0u64; digests.len()];
    for shift in [32u32, 48] {
        let bucket = |digest: u64| ((digest >> shift) & 0xFFFF) as usize;
        let mut starts = vec![0usize; 1 << 16];
        for &digest in digests.iter() {
            starts[bucket(digest)] += 1;
        }
        let mut total = 0;
        for start in starts.iter_mut() {
            let count = *start;
            *start = total;
            total += count;
        }
        for &digest in digests.iter() {
            let at = &mut starts[bucket(digest)];
            other[*at] = digest;
            *at += 1;
        }
        std::mem::swap(digests, &mut other);
    }
    insertion_sort(digests);
}

#[cfg(test)]
#[path = "digest_build_tests.rs"]
mod tests;
