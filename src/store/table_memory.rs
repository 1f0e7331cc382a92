//! [`TableMemory`]: the allocator of the store's two big in-memory tables, the sticky table's
//! slots (`sticky_slots`) and the set of kept event-id digests (`event_ids`). A block of at
//! least [`MAPPED_MIN_BYTES`] gets an anonymous mapping of its own (`mmap`), returned to the
//! kernel by `munmap` the moment the table lets it go; smaller blocks come from the global
//! allocator.
//!
//! **Why.** Both tables grow by replacing their memory with a bigger block: a replay doubles
//! them many times, and the sticky table's 64 shards are resized once more at its end. Through
//! the global allocator (mimalloc) those freed blocks stayed resident: the blocks the
//! unit-replay thread freed sat in the thread's segments, abandoned when the thread exited, and
//! nothing purged them while the server idled (`benches/load/results/mem2-2026-11-30-s7.md`
//! has the accounting). A mapping of its own is the table's exact size and leaves the process
//! with it, on whatever thread the table grows or is dropped.
//!
//! **Huge pages.** A mapping of at least [`HUGE_PAGE`] is aligned to it and advised
//! `MADV_HUGEPAGE` (Linux): the tables are read and written at random over hundreds of
//! megabytes, and a 2 MiB page needs one fault and one TLB entry where 4 KiB pages need 512.
//! The tables fill every slot they map (a free slot is written, not left zero), so a huge page
//! holds no more memory than the small pages would.
//!
//! **Switch.** `BANDITD_TABLE_MEMORY=global` in the environment (read once) sends every block
//! to the global allocator, as before this module: the A side of the A/B of one binary in
//! `benches/load/results/mem2-2026-11-30-s7.md`. A diagnostic, not a setting.

use std::alloc::Layout;
use std::ptr::NonNull;

use allocator_api2::alloc::{AllocError, Allocator, Global};

/// Blocks of at least this size are mapped on their own.
pub const MAPPED_MIN_BYTES: usize = 1 << 20;
/// A transparent huge page on x86-64 and aarch64 with 4 KiB pages.
pub const HUGE_PAGE: usize = 2 << 20;
/// mmap's alignment: blocks that need more come from the global allocator.
const MAPPING_ALIGN: usize = 4096;

/// See the module docs. Stateless: whether a block is mapped follows from its layout, so
/// `deallocate` (given the same layout, as the `Allocator` contract requires) frees it the way
/// it was allocated.
#[derive(Debug, Clone, Copy, Default)]
pub struct TableMemory;

fn is_mapped(layout: Layout) -> bool {
    cfg!(unix)
        && layout.size() >= MAPPED_MIN_BYTES
        && layout.align() <= MAPPING_ALIGN
        && !all_global()
}

/// Whether the switch (module docs) sends every block to the global allocator. Read once, so
/// a block is always freed the way it was allocated.
fn all_global() -> bool {
    static ALL_GLOBAL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ALL_GLOBAL.get_or_init(|| {
        std::env::var_os("BANDITD_TABLE_MEMORY").is_some_and(|value| value == "global")
    })
}

// SAFETY: a mapped block is a fresh private mapping of at least `layout.size()` bytes, aligned
// to a page (>= `layout.align()`), valid until `deallocate` unmaps it; every other block is
// the global allocator's, freed by it. `is_mapped` gives the same answer for the same layout.
unsafe impl Allocator for TableMemory {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if !is_mapped(layout) {
            return Global.allocate(layout);
        }
        let start = map(layout.size()).ok_or(AllocError)?;
        Ok(NonNull::slice_from_raw_parts(start, layout.size()))
    }

    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if !is_mapped(layout) {
            return Global.allocate_zeroed(layout);
        }
        // An anonymous mapping reads as zeros.
        self.allocate(layout)
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if is_mapped(layout) {
            unmap(ptr, layout.size());
        } else {
            // SAFETY: allocated by `Global` with this layout (the caller's contract).
            unsafe { Global.deallocate(ptr, layout) }
        }
    }
}

/// `len` zero bytes in [`TableMemory`], not written: a block of at least [`MAPPED_MIN_BYTES`]
/// is a fresh mapping, which reads as zeros, so its pages are faulted in (and zeroed once, by
/// the kernel) only where a slot is written. Filling a `Vec` with `resize(len, 0)` wrote every
/// byte of a 700 MB table a second time at a 100M-digest restart
/// (`benches/load/results/restart5-2026-12-01-s10.md`).
pub fn zeroed_bytes(len: usize) -> allocator_api2::vec::Vec<u8, TableMemory> {
    if len == 0 {
        return allocator_api2::vec::Vec::new_in(TableMemory);
    }
    let Ok(layout) = Layout::array::<u8>(len) else {
        std::alloc::handle_alloc_error(Layout::new::<u8>())
    };
    let Ok(block) = TableMemory.allocate_zeroed(layout) else {
        std::alloc::handle_alloc_error(layout)
    };
    // SAFETY: `block` was allocated by `TableMemory` with the layout of `len` bytes (what the
    // `Vec` gives back when dropped: capacity `len`), and `allocate_zeroed` made all `len`
    // bytes zeros, so they are initialised.
    unsafe {
        allocator_api2::vec::Vec::from_raw_parts_in(
            block.cast::<u8>().as_ptr(),
            len,
            len,
            TableMemory,
        )
    }
}

/// A private anonymous mapping of `size` bytes (zeros until written), aligned to
/// [`HUGE_PAGE`] and advised to use huge pages when it is at least that big.
#[cfg(unix)]
fn map(size: usize) -> Option<NonNull<u8>> {
    let huge = size >= HUGE_PAGE;
    let reserve = if huge {
        size.checked_add(HUGE_PAGE)?
    } else {
        size
    };
    // SAFETY: a new anonymous mapping; no existing memory is touched.
    let raw = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            reserve,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return None;
    }
    let raw = raw.cast::<u8>();
    if !huge {
        return NonNull::new(raw);
    }
    // Trim the reservation to a HUGE_PAGE-aligned start and a page-rounded end.
    let head = (HUGE_PAGE - (raw as usize) % HUGE_PAGE) % HUGE_PAGE;
    let used = size.next_multiple_of(MAPPING_ALIGN);
    let tail = reserve - head - used;
    // SAFETY: both ranges lie inside the mapping made above and are not handed out.
    unsafe {
        if head > 0 {
            libc::munmap(raw.cast(), head);
        }
        let start = raw.add(head);
        if tail > 0 {
            libc::munmap(start.add(used).cast(), tail);
        }
        advise_huge_pages(start, used);
        NonNull::new(start)
    }
}

#[cfg(not(unix))]
fn map(_size: usize) -> Option<NonNull<u8>> {
    None
}

#[cfg(target_os = "linux")]
fn advise_huge_pages(start: *mut u8, len: usize) {
    // SAFETY: advice on a range of our own mapping; a refusal (THP off) changes nothing.
    unsafe {
        libc::madvise(start.cast(), len, libc::MADV_HUGEPAGE);
    }
}

#[cfg(all(unix, not(target_os = "linux")))]
fn advise_huge_pages(_start: *mut u8, _len: usize) {}

#[cfg(unix)]
fn unmap(ptr: NonNull<u8>, size: usize) {
    // SAFETY: `ptr` starts a mapping `map` made for `size` bytes; munmap rounds up to the page
    // as mmap did. It cannot fail on a whole mapping of ours.
    unsafe {
        libc::munmap(ptr.as_ptr().cast(), size);
    }
}

#[cfg(not(unix))]
fn unmap(_ptr: NonNull<u8>, _size: usize) {}

/// A replay's scratch array of `u64`s, zeros until written (`digest_build`'s buckets, which
/// the replay threads fill at once through [`ZeroedWords::as_atomic`]).
///
/// A big one (at least [`MAPPED_MIN_BYTES`]) is an anonymous mapping of its own on huge pages
/// like the tables' (module docs): the kernel's zeros need no second pass, and the replay
/// writes all over it at random, where 4 KiB pages cost a TLB miss per write (on this VM a
/// nested page walk). A small one, or any with the switch (module docs) set, is an ordinary
/// zeroed allocation.
pub struct ZeroedWords {
    memory: WordMemory,
}

enum WordMemory {
    Mapped { start: NonNull<u64>, len: usize },
    Owned(Box<[u64]>),
}

// SAFETY: a mapping is owned by its `ZeroedWords` alone, like a `Box<[u64]>`.
unsafe impl Send for ZeroedWords {}
// SAFETY: shared access only reads (`Deref`), as for a `Box<[u64]>`.
unsafe impl Sync for ZeroedWords {}

impl ZeroedWords {
    /// No words (allocates nothing).
    pub fn empty() -> ZeroedWords {
        ZeroedWords {
            memory: WordMemory::Owned(Box::new([])),
        }
    }

    /// `len` zeros; `None` if the memory cannot be mapped.
    pub fn new(len: usize) -> Option<ZeroedWords> {
        let bytes = len.checked_mul(std::mem::size_of::<u64>())?;
        let layout = Layout::from_size_align(bytes, std::mem::align_of::<u64>()).ok()?;
        if !is_mapped(layout) {
            return Some(ZeroedWords {
                memory: WordMemory::Owned(vec![0; len].into_boxed_slice()),
            });
        }
        let start = map(bytes)?.cast::<u64>();
        Some(ZeroedWords {
            memory: WordMemory::Mapped { start, len },
        })
    }
}

impl ZeroedWords {
    /// The words as atomics, for threads that write them at once.
    pub fn as_atomic(&self) -> &[std::sync::atomic::AtomicU64] {
        let words: &[u64] = self;
        // SAFETY: `AtomicU64` has the same size and alignment as `u64` (its documented layout
        // guarantee, on every target with 64-bit atomics), and the shared borrow of `self`
        // keeps every non-atomic access out while the atomic view lives.
        unsafe {
            std::slice::from_raw_parts(
                words.as_ptr().cast::<std::sync::atomic::AtomicU64>(),
                words.len(),
            )
        }
    }
}

impl std::ops::Deref for ZeroedWords {
    type Target = [u64];

    fn deref(&self) -> &[u64] {
        match &self.memory {
            // SAFETY: a page-aligned mapping of `len` u64s, zero-filled by the kernel (every
            // bit pattern is a valid u64), alive while `self` is.
            WordMemory::Mapped { start, len } => unsafe {
                std::slice::from_raw_parts(start.as_ptr(), *len)
            },
            WordMemory::Owned(words) => words,
        }
    }
}

impl std::ops::DerefMut for ZeroedWords {
    fn deref_mut(&mut self) -> &mut [u64] {
        match &mut self.memory {
            // SAFETY: as in `deref`; `&mut self` makes this the only access.
            WordMemory::Mapped { start, len } => unsafe {
                std::slice::from_raw_parts_mut(start.as_ptr(), *len)
            },
            WordMemory::Owned(words) => words,
        }
    }
}

impl Drop for ZeroedWords {
    fn drop(&mut self) {
        if let WordMemory::Mapped { start, len } = self.memory {
            unmap(start.cast(), len * std::mem::size_of::<u64>());
        }
    }
}

/// Returns to the kernel, now, the memory the global allocator holds freed: called once a
/// restart's replays are done (`load::load`). The replays read the logs on threads of their
/// own, which then let those pages go (`load::settle_pages`) and exit; mimalloc purges freed
/// memory only after a delay and on a later allocation's slow path, so on an idle server the
/// freed pages stayed resident: ~11 B per sticky unit at 10M units, in 5 of 9 restarts
/// (`benches/load/results/marks-2026-11-30-s8.md`). One forced collection costs milliseconds.
/// In a process whose global allocator is not mimalloc (the tests) it finds nothing to return.
pub fn return_freed_memory() {
    // SAFETY: `mi_collect` takes no pointers and only walks mimalloc's own bookkeeping; it is
    // safe to call from any thread at any time.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

#[cfg(test)]
#[path = "table_memory_tests.rs"]
mod tests;
