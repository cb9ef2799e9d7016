"""Print the colour-map tables of src/report/colormap.rs from matplotlib.

One-off generator (matplotlib is not in requirements.txt; any matplotlib
>= 3.5 gives the same tables): `python scripts/colormaps.py`.
Each map is sampled as matplotlib draws it with 256 colours, `cmap(i / 255)`
for i = 0…255, and rounded to 8 bits. viridis is matplotlib's `_viridis_data`
(CC0, by Stéfan van der Walt and Nathaniel Smith); `seismic` is the linear
segmented map through (0, 0, 0.3), (0, 0, 1), (1, 1, 1), (1, 0, 0), (0.5, 0, 0).
"""

import matplotlib
import numpy as np


def table(name):
    cmap = matplotlib.colormaps[name].resampled(256)
    rgb = np.round(cmap(np.arange(256) / 255.0)[:, :3] * 255).astype(int)
    rows = []
    for i in range(0, 256, 8):
        rows.append("    " + " ".join(f"[{r}, {g}, {b}]," for r, g, b in rgb[i : i + 8]))
    return "\n".join(rows)


for name in ["seismic", "viridis"]:
    print(f"/// matplotlib `{name}`, 256 entries.")
    print(f"pub(super) const {name.upper()}: [[u8; 3]; 256] = [")
    print(table(name))
    print("];")
