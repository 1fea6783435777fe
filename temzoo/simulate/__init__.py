"""Physics of the synthetic TEM images: optics, projected potentials, crystals, noise.

The simulators are plain numpy (no TensorFlow) and deterministic for a given
``numpy.random.Generator``:

* :func:`temzoo.simulate.hrtem.simulate_nanoparticles` - HRTEM of FCC metal
  nanoparticles on amorphous carbon (phase-object approximation + CTF).
* :func:`temzoo.simulate.stem.simulate_lattice` - atomic-resolution STEM
  images of 2D Bravais lattices with TEMImageNet-style targets.
* :func:`temzoo.simulate.realistic.simulate_realistic` - a mixture of varied
  lattices, HRTEM, low-magnification particles and overviews with acquisition
  artefacts (:mod:`~temzoo.simulate.content`, :mod:`~temzoo.simulate.artefacts`).

Units: lengths in Ångström (Å), spatial frequencies in 1/Å, voltages in kV
for the microscope and V for potentials, dose in electrons per Å².
"""

from temzoo.simulate.hrtem import HrtemRanges, simulate_nanoparticles
from temzoo.simulate.noise import apply_dose
from temzoo.simulate.optics import ctf, electron_wavelength, interaction_constant
from temzoo.simulate.realistic import RealisticRanges, simulate_realistic
from temzoo.simulate.stem import StemRanges, simulate_lattice

__all__ = [
    "HrtemRanges",
    "RealisticRanges",
    "StemRanges",
    "apply_dose",
    "ctf",
    "electron_wavelength",
    "interaction_constant",
    "simulate_lattice",
    "simulate_nanoparticles",
    "simulate_realistic",
]
