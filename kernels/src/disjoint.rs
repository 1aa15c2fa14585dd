//! A mutable slice that parallel workers write in disjoint parts which `par_chunks_mut` cannot
//! hand out: a channel's planes strided across the batch, a column tile of a row-major matrix.

use std::marker::PhantomData;
use std::ops::Range;

/// A shared view of a mutable slice, borrowed for `'a` so nothing else touches the slice
/// meanwhile. Workers on several threads take parts of it through the unsafe accessors.
///
/// # Safety
/// Every accessor carries one contract: the elements a worker reaches (the range of
/// [`range_mut`](Self::range_mut), or what it writes through [`as_mut_ptr`](Self::as_mut_ptr))
/// are reached by no other worker while it holds them. Bounds are checked; disjointness is
/// the caller's to show at each use.
pub(crate) struct DisjointSlice<'a, T> {
    ptr: *mut T,
    len: usize,
    _slice: PhantomData<&'a mut [T]>,
}

// SAFETY: a shared `DisjointSlice` only gives out disjoint `&mut` parts (the type's contract),
// so sharing it moves elements between threads, as sending a `&mut [T]` would.
unsafe impl<T: Send> Send for DisjointSlice<'_, T> {}
// SAFETY: as for `Send`: through a shared reference each worker reaches only its own elements.
unsafe impl<T: Send> Sync for DisjointSlice<'_, T> {}

impl<'a, T> DisjointSlice<'a, T> {
    pub(crate) fn new(slice: &'a mut [T]) -> Self {
        Self { ptr: slice.as_mut_ptr(), len: slice.len(), _slice: PhantomData }
    }

    /// Elements `range` as a slice of their own.
    ///
    /// # Safety
    /// No other live borrow or write covers any element of `range` (see the type).
    #[inline(always)]
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn range_mut(&self, range: Range<usize>) -> &mut [T] {
        assert!(range.start <= range.end && range.end <= self.len, "DisjointSlice: {range:?} of {}", self.len);
        std::slice::from_raw_parts_mut(self.ptr.add(range.start), range.len())
    }

    /// The first element, for kernels that write a strided block (a matrix tile). Writing
    /// through it is unsafe on the type's contract, and must stay inside the `len` elements.
    #[inline(always)]
    pub(crate) fn as_mut_ptr(&self) -> *mut T {
        self.ptr
    }
}

#[cfg(test)]
mod tests {
    use rayon::prelude::*;

    use super::DisjointSlice;

    #[test]
    fn workers_fill_their_interleaved_parts() {
        let (workers, part, rounds) = (3, 4, 5);
        let mut buf = vec![0usize; workers * part * rounds];
        let view = DisjointSlice::new(&mut buf);
        (0..workers).into_par_iter().for_each(|w| {
            for r in 0..rounds {
                let start = (r * workers + w) * part;
                // SAFETY: worker `w` alone takes parts `r * workers + w`.
                unsafe { view.range_mut(start..start + part) }.fill(w);
            }
        });
        assert!(buf.chunks(part).enumerate().all(|(i, c)| c.iter().all(|&v| v == i % workers)));
    }

    #[test]
    #[should_panic(expected = "DisjointSlice")]
    fn a_range_past_the_end_panics() {
        let mut buf = [0f32; 4];
        let view = DisjointSlice::new(&mut buf);
        // SAFETY: the only borrow; the bounds check fires first.
        let _ = unsafe { view.range_mut(2..5) };
    }
}
