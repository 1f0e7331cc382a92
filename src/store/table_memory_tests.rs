use std::alloc::Layout;

use allocator_api2::alloc::Allocator;

use super::{HUGE_PAGE, MAPPED_MIN_BYTES, TableMemory, zeroed_bytes};

/// The mapping of `/proc/self/maps` that starts at `address`, as (start, end).
/// Held by this module's tests while they map or look at mappings: a fresh mapping next to
/// another test's may share its entry in `/proc/self/maps` (the kernel merges adjacent
/// anonymous mappings), and `mapping_at` looks for one that starts at the block.
static MAPPING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn mapping_lock() -> std::sync::MutexGuard<'static, ()> {
    MAPPING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn mapping_at(address: usize) -> Option<(usize, usize)> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines().find_map(|line| {
        let range = line.split_whitespace().next()?;
        let (start, end) = range.split_once('-')?;
        let start = usize::from_str_radix(start, 16).ok()?;
        let end = usize::from_str_radix(end, 16).ok()?;
        (start == address).then_some((start, end))
    })
}

#[test]
#[cfg(target_os = "linux")]
fn a_big_block_is_a_mapping_of_its_own_and_leaves_the_process_when_freed() {
    let _mapping = mapping_lock();
    let layout = Layout::from_size_align(3 * HUGE_PAGE + 100, 8).unwrap();
    let block = TableMemory.allocate(layout).unwrap();
    let address = block.cast::<u8>().as_ptr() as usize;
    assert_eq!(address % HUGE_PAGE, 0, "aligned for huge pages");
    // SAFETY: the block is ours and `layout.size()` bytes long.
    unsafe { block.cast::<u8>().as_ptr().write_bytes(0xAB, layout.size()) };
    let (start, end) = mapping_at(address).expect("a mapping starts at the block");
    assert!(end - start >= layout.size() && end - start < layout.size() + 4096);
    // SAFETY: allocated above with this layout.
    unsafe { TableMemory.deallocate(block.cast(), layout) };
    assert_eq!(mapping_at(address), None, "unmapped when freed");
}

#[test]
fn a_small_block_comes_from_the_global_allocator_and_zeroed_blocks_read_zero() {
    let _mapping = mapping_lock();
    for size in [64, MAPPED_MIN_BYTES - 8, MAPPED_MIN_BYTES, HUGE_PAGE + 8] {
        let layout = Layout::from_size_align(size, 8).unwrap();
        let block = TableMemory.allocate_zeroed(layout).unwrap();
        // SAFETY: `size` initialised bytes (zeroed) of our block.
        let bytes = unsafe { std::slice::from_raw_parts(block.cast::<u8>().as_ptr(), size) };
        assert!(
            bytes.iter().all(|&byte| byte == 0),
            "{size} bytes read zero"
        );
        #[cfg(target_os = "linux")]
        assert_eq!(
            mapping_at(block.cast::<u8>().as_ptr() as usize).is_some(),
            size >= MAPPED_MIN_BYTES,
            "{size} bytes"
        );
        // SAFETY: allocated above with this layout.
        unsafe { TableMemory.deallocate(block.cast(), layout) };
    }
}

#[test]
fn zeroed_bytes_read_as_zeros_small_or_mapped_and_take_writes() {
    let _mapping = mapping_lock();
    for len in [
        0,
        1,
        4096,
        MAPPED_MIN_BYTES - 1,
        MAPPED_MIN_BYTES,
        3 * HUGE_PAGE + 5,
    ] {
        let mut bytes = zeroed_bytes(len);
        assert_eq!((bytes.len(), bytes.capacity()), (len, len));
        assert!(bytes.iter().all(|&byte| byte == 0), "{len} bytes");
        if len > 0 {
            bytes[0] = 9;
            bytes[len - 1] = 7;
            assert_eq!(bytes[len - 1], 7);
            assert_eq!(bytes[0], if len == 1 { 7 } else { 9 });
        }
    }
}
