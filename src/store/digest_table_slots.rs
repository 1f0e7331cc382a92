//! The loops over a [`DigestTable`]'s slot bytes that run once per slot, written for each slot
//! width (6, 7 and 8 bytes) so that a slot is one fixed-size load or store with no per-slot
//! bounds check or mask merge: an insert's run shift (tens of slots at 90% load) and a growth's
//! pass over every slot. Through the width-generic `load`/`store` these cost ~1,200 and ~850
//! instructions per bulk event, the largest parts of the writer
//! (`benches/load/results/bulk7-2026-12-01-s13.md`).

use super::Geometry;

/// Calls `$run::<W>($args)` for the slot width `W` of `$geometry`.
macro_rules! by_width {
    ($geometry:expr, $run:ident($($arg:expr),* $(,)?)) => {
        match $geometry.width {
            6 => $run::<6>($($arg),*),
            7 => $run::<7>($($arg),*),
            _ => $run::<8>($($arg),*),
        }
    };
}

/// The slot in the `W` bytes of `slot` (little-endian).
#[inline(always)]
fn read<const W: usize>(slot: &[u8]) -> u64 {
    let mut word = [0; 8];
    word[..W].copy_from_slice(&slot[..W]);
    u64::from_le_bytes(word)
}

/// Writes the `W` low bytes of `value` as the slot; the bytes after it are left as they are.
#[inline(always)]
fn write<const W: usize>(slot: &mut [u8], value: u64) {
    slot[..W].copy_from_slice(&value.to_le_bytes()[..W]);
}

/// The free slot that ends the run from `at`, if the run can be shifted onto it with no
/// displacement past the maximum (no slot of it at the full tag) and it lies within the slots.
pub(super) fn run_end(
    bytes: &[u8],
    at: usize,
    displacement: usize,
    geometry: &Geometry,
) -> Option<usize> {
    if displacement > geometry.max_displacement {
        return None;
    }
    by_width!(geometry, run_end_of(bytes, at, geometry))
}

fn run_end_of<const W: usize>(bytes: &[u8], at: usize, geometry: &Geometry) -> Option<usize> {
    let full_tag = geometry.max_displacement as u64 + 1;
    let run = bytes.get(at * W..geometry.slots * W)?;
    for (offset, slot) in run.chunks_exact(W).enumerate() {
        let tag = read::<W>(slot) >> geometry.remainder_bits;
        if tag == 0 {
            return Some(at + offset);
        }
        if tag == full_tag {
            return None;
        }
    }
    None
}

/// Moves the slots `at..end` one slot on, each one further from its home (its tag one
/// higher); `end` is the free slot [`run_end`] found, and `at` is left as it was.
pub(super) fn shift_run(bytes: &mut [u8], at: usize, end: usize, geometry: &Geometry) {
    by_width!(geometry, shift_run_of(bytes, at, end, geometry))
}

fn shift_run_of<const W: usize>(bytes: &mut [u8], at: usize, end: usize, geometry: &Geometry) {
    let one = 1u64 << geometry.remainder_bits;
    let (first, rest) = bytes[at * W..(end + 1) * W].split_at_mut(W);
    let mut carried = read::<W>(first);
    for slot in rest.chunks_exact_mut(W) {
        let next = read::<W>(slot);
        write::<W>(slot, carried + one);
        carried = next;
    }
}

/// Writes `value` as slot `at` (its `width` low bytes).
pub(super) fn write_slot(bytes: &mut [u8], at: usize, value: u64, geometry: &Geometry) {
    by_width!(geometry, write_slot_of(bytes, at, value))
}

fn write_slot_of<const W: usize>(bytes: &mut [u8], at: usize, value: u64) {
    write::<W>(&mut bytes[at * W..(at + 1) * W], value);
}

/// Calls `visit(home, digest)` for every digest in the slots, in slot order (by home, and in
/// their run's order among those sharing one).
pub(super) fn for_each_digest(bytes: &[u8], geometry: &Geometry, visit: impl FnMut(usize, u64)) {
    by_width!(geometry, for_each_digest_of(bytes, geometry, visit))
}

fn for_each_digest_of<const W: usize>(
    bytes: &[u8],
    geometry: &Geometry,
    mut visit: impl FnMut(usize, u64),
) {
    let mask = geometry.remainder_mask();
    for (at, slot) in bytes[..geometry.slots * W].chunks_exact(W).enumerate() {
        let slot = read::<W>(slot);
        let tag = slot >> geometry.remainder_bits;
        if tag != 0 {
            let home = at - (tag as usize - 1);
            visit(home, geometry.digest(home, slot & mask));
        }
    }
}
