"""temzoo.inference.buffers: zeroed arrays for predict's output and tile batches, in 4 KiB pages."""

import mmap
import sys

import numpy as np
import pytest

from temzoo.inference import buffers


def _vm_flags(address):
    """The ``VmFlags`` of the mapping holding ``address`` in /proc/self/smaps."""
    with open("/proc/self/smaps") as f:
        inside = False
        for line in f:
            head = line.split()[0]
            if "-" in head and all(c in "0123456789abcdef-" for c in head):
                lo, hi = (int(v, 16) for v in head.split("-"))
                inside = lo <= address < hi
            elif inside and line.startswith("VmFlags:"):
                return line.split()[1:]
    raise AssertionError(f"no mapping holds {address:#x}")


def test_large_arrays_are_zeroed_writable_and_mapped_apart():
    shape = (1030, 1030, 3)  # 12.1 MiB, above NumPy's huge-page threshold
    array = buffers.zeros(shape)
    assert array.shape == shape and array.dtype == np.float32
    assert array.flags.writeable and array.flags.c_contiguous
    assert not array.any()
    array[5, 7, 1] = 2.5
    array[-1] += 1
    assert array.sum() == pytest.approx(2.5 + 1030 * 3)
    if hasattr(mmap, "MAP_PRIVATE"):
        owner = array
        while isinstance(owner, np.ndarray):
            owner = owner.base
        owner = owner.obj if isinstance(owner, memoryview) else owner
        assert isinstance(owner, mmap.mmap)  # its own private mapping, unmapped with the array


def test_small_arrays_are_plain_numpy_and_large_ones_keep_their_dtype():
    small = buffers.zeros((16, 16))
    assert isinstance(small, np.ndarray) and small.base is None and not small.any()
    ints = buffers.zeros((2048, 2048), np.int16)  # 8 MiB
    assert ints.dtype == np.int16 and ints.shape == (2048, 2048) and not ints.any()
    assert buffers.zeros(5 << 20, np.uint8).shape == (5 << 20,)


@pytest.mark.skipif(not sys.platform.startswith("linux") or not hasattr(mmap, "MADV_NOHUGEPAGE"),
                    reason="VmFlags and MADV_NOHUGEPAGE are Linux's")
def test_large_arrays_are_advised_into_small_pages_unlike_numpys():
    ours = buffers.zeros((2048, 2048))
    ours[:] = 1  # touched, as predict's output is
    middle = 8 << 20  # NumPy advises from the first whole page after malloc's header on
    assert "nh" in _vm_flags(ours.ctypes.data) and "nh" in _vm_flags(ours.ctypes.data + middle)  # MADV_NOHUGEPAGE
    theirs = np.zeros((2048, 2048), np.float32)
    theirs[:] = 1
    core = getattr(np, "_core", None) or np.core
    if core.multiarray._get_madvise_hugepage():
        assert "hg" in _vm_flags(theirs.ctypes.data + middle)  # what NumPy does: MADV_HUGEPAGE
