"""Large zeroed arrays in 4 KiB pages, for the outputs and tile batches of :func:`temzoo.predict`.

NumPy advises the kernel to back every array of 4 MiB or more with transparent huge pages
(``madvise(MADV_HUGEPAGE)``, unless ``NUMPY_MADVISE_HUGEPAGE=0``). On bare metal that makes
the first write to a new array a little cheaper. In a virtual machine that hands freed memory
back to its host (free page reporting, as in Firecracker VMs) it makes it far dearer: the first
write to memory freed a few seconds before cost 3.3-7.4 s per GiB as 2 MiB pages against
0.46-0.61 s per GiB as 4 KiB pages on the 2-core VM temzoo's benchmarks run on
(``benchmarks/memory_touch.py``, docs/benchmarks.md). A prediction's output is new memory of
the image's size (200 MiB for a 4096 px three-class map), written once per tile.

:func:`zeros` maps such arrays privately and advises small pages (``MADV_NOHUGEPAGE``). On that VM
a 4096 px ``nanoparticles`` prediction ran 1.15x as fast (paired median of 6 rounds,
``benchmarks/predict.py --compare-buffers``); what bare metal gains or loses was not measured (there
the kernel zeroes either kind of page without the host). Small arrays, and platforms without
``mmap`` flags (Windows), get ``np.zeros``.
"""

import mmap

import numpy as np

# NumPy's own threshold for its huge-page advice: smaller arrays are not advised
SMALL_PAGES_FROM_BYTES = 4 << 20


def zeros(shape, dtype=np.float32):
    """``np.zeros(shape, dtype)``, backed by private anonymous memory in 4 KiB pages where the platform allows.

    The array owns its mapping through ``.base``: the memory is unmapped when the array and
    every view of it are gone.
    """
    dtype = np.dtype(dtype)
    shape = (shape,) if np.isscalar(shape) else tuple(shape)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes < SMALL_PAGES_FROM_BYTES or not hasattr(mmap, "MAP_PRIVATE"):
        return np.zeros(shape, dtype)
    buffer = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE)
    if hasattr(mmap, "MADV_NOHUGEPAGE"):
        buffer.madvise(mmap.MADV_NOHUGEPAGE)
    return np.frombuffer(buffer, dtype).reshape(shape)
