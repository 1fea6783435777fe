"""FCC crystals projected along low-index zone axes: atomic columns of nanoparticles.

Looking down a zone axis, an FCC crystal is a 2D lattice of atomic columns;
each column holds one atom every ``1 / column_density`` Å along the beam:

* [100]: square lattice of spacing a/2, 1 atom per a along the column
  (strongest spacing d200 = a/2).
* [110]: rectangular a/sqrt(2) x a lattice with a centring column,
  1 atom per a/sqrt(2) (d111 = a/sqrt(3), d200 = a/2 visible).
* [111]: triangular lattice of spacing a/sqrt(6), 1 atom per sqrt(3) a
  (d220 = a / (2 sqrt(2))).
"""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Material:
    name: str
    z: int
    lattice_constant: float  # Å, FCC
    debye_waller: float = 0.6  # Å^2


MATERIALS = {
    "Au": Material("Au", 79, 4.078),
    "Ag": Material("Ag", 47, 4.086),
    "Pt": Material("Pt", 78, 3.924),
    "Pd": Material("Pd", 46, 3.891),
    "Cu": Material("Cu", 29, 3.615),
}

ZONE_AXES = ("[100]", "[110]", "[111]")


def projected_cell(zone_axis, a):
    """(lattice vectors 2x2 in Å as rows, basis Nx2 in Å, atoms per Å along a column)."""
    if zone_axis == "[100]":
        return np.array([[a / 2, 0.0], [0.0, a / 2]]), np.zeros((1, 2)), 1.0 / a
    if zone_axis == "[110]":
        s = a / np.sqrt(2)
        return np.array([[s, 0.0], [0.0, a]]), np.array([[0.0, 0.0], [s / 2, a / 2]]), 1.0 / s
    if zone_axis == "[111]":
        b = a / np.sqrt(6)
        return np.array([[b, 0.0], [b / 2, b * np.sqrt(3) / 2]]), np.zeros((1, 2)), 1.0 / (np.sqrt(3) * a)
    raise ValueError(f"zone axis {zone_axis!r} is not supported; choose one of {', '.join(ZONE_AXES)}.")


def particle_columns(center, semi_axes, ellipse_angle, lattice_angle, zone_axis, a, rng):
    """Atomic columns of an ellipsoidal FCC particle seen down ``zone_axis``.

    Args:
        center: (x, y) of the particle centre in Å.
        semi_axes: (ra, rb) in-plane semi-axes in Å; the semi-axis along the
            beam is their mean.
        ellipse_angle, lattice_angle: in-plane rotations (rad) of the outline and
            of the crystal lattice.
        rng: draws the lattice's sub-cell offset.

    Returns:
        (x, y, atoms): column positions in Å and the number of atoms in each
        column (projected thickness x column density, rounded; empty columns dropped).
    """
    vectors, basis, density = projected_cell(zone_axis, a)
    ra, rb = semi_axes
    rc = 0.5 * (ra + rb)
    radius = max(ra, rb)
    step = min(np.abs(np.linalg.det(vectors)) / np.linalg.norm(v) for v in vectors)
    n = int(np.ceil(radius / step)) + 2
    i, j = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), indexing="ij")
    cells = i.reshape(-1, 1) * vectors[0] + j.reshape(-1, 1) * vectors[1]
    offset = rng.uniform(0, 1, 2) @ vectors
    points = (cells[:, None, :] + basis[None, :, :]).reshape(-1, 2) + offset
    cos_l, sin_l = np.cos(lattice_angle), np.sin(lattice_angle)
    points = points @ np.array([[cos_l, sin_l], [-sin_l, cos_l]])
    cos_e, sin_e = np.cos(ellipse_angle), np.sin(ellipse_angle)
    u = points[:, 0] * cos_e + points[:, 1] * sin_e
    v = -points[:, 0] * sin_e + points[:, 1] * cos_e
    q = (u / ra) ** 2 + (v / rb) ** 2
    inside = q < 1.0
    thickness = 2.0 * rc * np.sqrt(1.0 - q[inside])
    atoms = np.rint(thickness * density)
    keep = atoms > 0
    pts = points[inside][keep]
    return pts[:, 0] + center[0], pts[:, 1] + center[1], atoms[keep]


def draw_ellipse(mask, pixel_size, center, semi_axes, ellipse_angle, value=1):
    """Set ``mask`` to ``value`` at the pixels whose centres lie inside the projected ellipse.

    Pixel (row, col) has its centre at ((col + 0.5) * pixel_size, (row + 0.5) * pixel_size) Å.
    Only the ellipse's bounding box is evaluated.
    """
    height, width = mask.shape
    reach = max(semi_axes) / pixel_size + 1
    cx, cy = center[0] / pixel_size - 0.5, center[1] / pixel_size - 0.5
    r0, r1 = max(0, int(cy - reach)), min(height, int(np.ceil(cy + reach)) + 1)
    c0, c1 = max(0, int(cx - reach)), min(width, int(np.ceil(cx + reach)) + 1)
    if r0 >= r1 or c0 >= c1:
        return mask
    y = (np.arange(r0, r1) + 0.5) * pixel_size - center[1]
    x = (np.arange(c0, c1) + 0.5) * pixel_size - center[0]
    cos_e, sin_e = np.cos(ellipse_angle), np.sin(ellipse_angle)
    u = x[None, :] * cos_e + y[:, None] * sin_e
    v = -x[None, :] * sin_e + y[:, None] * cos_e
    inside = (u / semi_axes[0]) ** 2 + (v / semi_axes[1]) ** 2 < 1.0
    mask[r0:r1, c0:c1][inside] = value
    return mask
