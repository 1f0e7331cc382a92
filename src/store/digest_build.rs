//! How a restart builds the kept event ids' table (`digest_table`) from the event log: the
//! replay threads collect the digests into buckets by their top bits ([`DigestCollector`]),
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
//! **Two threads.** Each replay thread has a collector of its own with room for all `n` digests
//! (the log's key ranges are handed out as the threads ask, so their shares are not known
//! ahead). Its array is `table_memory::ZeroedWords`: a page costs memory and the kernel's
//! zeroing only once written, so two collectors that each fill part of every bucket touch
//! about one collector's worth of pages (plus a page per bucket per thread).

use super::digest_table::{DigestTable, Placement};
use super::table_memory::ZeroedWords;

/// The mean digests per bucket a collector aims at (module docs).
const BUCKET_MEAN: usize = 4096;
/// Below this many expected digests, no buckets: everything goes to the overflow list.
const MIN_BUCKETED: usize = 1 << 16;

/// The buckets of a collector: `2^bits` of them, each with room for `room` digests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    bits: u32,
    room: usize,
}

impl Layout {
    /// The layout for `expected` digests at about `mean` per bucket; no buckets (`room` 0)
    /// for fewer than `min_bucketed`.
    fn new(expected: usize, mean: usize, min_bucketed: usize) -> Layout {
        if expected < min_bucketed {
            return Layout { bits: 1, room: 0 };
        }
        // At least one bucket per `mean`, at most 2^32 buckets (a digest's top bits index them).
        let bits = (expected / mean).max(2).ilog2().min(32);
        let mean = expected >> bits;
        let spread = 6 * (mean as f64).sqrt().ceil() as usize;
        Layout {
            bits,
            room: (mean + spread + 16).min(u32::MAX as usize),
        }
    }

    fn buckets(&self) -> usize {
        1 << self.bits
    }

    fn bucket(&self, digest: u64) -> usize {
        (digest >> (64 - self.bits)) as usize
    }
}

/// One replay thread's digests, by bucket (module docs).
pub struct DigestCollector {
    layout: Layout,
    /// Bucket `b`'s digests are `words[b · room ..][.. lens[b]]`.
    words: ZeroedWords,
    lens: Vec<u32>,
    overflow: Vec<u64>,
}

impl DigestCollector {
    /// A collector with room for `expected` digests (the last size kept, `size_hint`).
    pub fn new(expected: usize) -> DigestCollector {
        DigestCollector::with_layout(Layout::new(expected, BUCKET_MEAN, MIN_BUCKETED))
    }

    /// A collector of `2^bits` buckets of `room` digests each: the tests' small buckets,
    /// which overflow at small sizes.
    #[cfg(test)]
    pub fn with_buckets(bits: u32, room: usize) -> DigestCollector {
        DigestCollector::with_layout(Layout { bits, room })
    }

    fn with_layout(layout: Layout) -> DigestCollector {
        let words = if layout.room == 0 {
            None
        } else {
            layout
                .buckets()
                .checked_mul(layout.room)
                .and_then(ZeroedWords::new)
        };
        match words {
            Some(words) => DigestCollector {
                layout,
                words,
                lens: vec![0; layout.buckets()],
                overflow: Vec::new(),
            },
            // No buckets (or no memory for them): the overflow list takes everything.
            None => DigestCollector {
                layout: Layout { bits: 1, room: 0 },
                words: ZeroedWords::empty(),
                lens: vec![0; 2],
                overflow: Vec::new(),
            },
        }
    }

    pub fn push(&mut self, digest: u64) {
        let bucket = self.layout.bucket(digest);
        let len = &mut self.lens[bucket];
        if (*len as usize) < self.layout.room {
            self.words[bucket * self.layout.room + *len as usize] = digest;
            *len += 1;
        } else {
            self.overflow.push(digest);
        }
    }

    /// Digests collected (repeats included).
    pub fn len(&self) -> usize {
        self.lens.iter().map(|&len| len as usize).sum::<usize>() + self.overflow.len()
    }

    #[cfg(test)]
    pub fn overflowed(&self) -> usize {
        self.overflow.len()
    }

    fn bucket_slice(&self, bucket: usize) -> &[u64] {
        let start = bucket * self.layout.room;
        &self.words[start..start + self.lens[bucket] as usize]
    }
}

/// The table of every digest the collectors hold (repeats once), at the fitted load
/// (module docs).
pub fn build(collectors: Vec<DigestCollector>) -> DigestTable {
    let total = collectors.iter().map(DigestCollector::len).sum();
    let layout = collectors
        .iter()
        .find(|collector| collector.layout.room > 0)
        .map(|collector| collector.layout);
    let mut overflow = Vec::new();
    let mut bucketed = Vec::new();
    for mut collector in collectors {
        overflow.append(&mut collector.overflow);
        if Some(collector.layout) == layout {
            bucketed.push(collector);
        } else {
            // Not built with the others' layout: its buckets join the overflow list.
            for bucket in 0..collector.layout.buckets() {
                overflow.extend_from_slice(collector.bucket_slice(bucket));
            }
        }
    }
    sort_digests(&mut overflow);
    let mut placement = Placement::new(total);
    let mut overflow = overflow.into_iter().peekable();
    if let Some(layout) = layout {
        let mut sorter = BucketSorter::new(layout);
        for bucket in 0..layout.buckets() {
            for &digest in sorter.sort(bucketed.iter().map(|c| c.bucket_slice(bucket))) {
                while let Some(smaller) = overflow.next_if(|&kept| kept < digest) {
                    placement.push(smaller);
                }
                placement.push(digest);
            }
        }
    }
    for digest in overflow {
        placement.push(digest);
    }
    placement.finish()
}

/// Sorts one bucket's digests (from every collector) into a scratch array that stays in the
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
        let sub_bits = layout.room.next_power_of_two().ilog2().clamp(1, 64 - layout.bits);
        BucketSorter {
            shift: 64 - layout.bits - sub_bits,
            mask: (1u64 << sub_bits) - 1,
            counts: vec![0; (1 << sub_bits) + 1],
            scratch: Vec::new(),
        }
    }

    fn sort<'a>(&mut self, parts: impl Iterator<Item = &'a [u64]> + Clone) -> &[u64] {
        let len = parts.clone().map(<[u64]>::len).sum();
        self.scratch.clear();
        self.scratch.resize(len, 0);
        self.counts.fill(0);
        let key = |digest: u64| ((digest >> self.shift) & self.mask) as usize + 1;
        for &digest in parts.clone().flatten() {
            self.counts[key(digest)] += 1;
        }
        for at in 1..self.counts.len() {
            self.counts[at] += self.counts[at - 1];
        }
        for &digest in parts.flatten() {
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
