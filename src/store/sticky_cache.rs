//! What the backends report about their in-memory sticky records ([`StickyCacheStats`]), and
//! the default size of the Redis replica's cache of known units (`--sticky-cache-entries`).
//!
//! The sled store keeps every durable record in memory instead (`sticky_table`); it reports
//! the same figures from that table.

/// Default capacity of the Redis replica's cache of known sticky units, in entries: a site's
/// returning visitors of the last minutes, not its whole history. It holds the full load
/// test's 100,000 known units with room to spare.
pub const DEFAULT_STICKY_CACHE_ENTRIES: usize = 262_144;

/// Hit and miss counts since open, and the current fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StickyCacheStats {
    /// Most records held (`--sticky-cache-entries`; for the sled store's table, the units it
    /// has room for before it grows); 0: the cache is off.
    pub capacity: usize,
    pub entries: usize,
    /// Lookups answered from memory.
    pub hits: u64,
    /// Lookups that found nothing in memory (for the sled store's table: units with no
    /// assignment, since it holds them all).
    pub misses: u64,
}
