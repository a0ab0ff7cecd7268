"""Shrink the Twemoji set that gmu ships: 32x32 RGB pixels and the text fields.

    python data/twemoji/prepare.py ../shared/data/twemoji data/twemoji

Reads `emoji_meta.csv` and the 64x64 RGBA PNGs of `emoji-datasource-twitter@16.0.0`
(see README.md here), composites each picture on white, resizes it to 32x32
(Lanczos), and writes
- `images_32.u8.gz`: uint8 [N, 3, 32, 32] (channel, row, column), rows in CSV order;
- `meta.csv.gz`: `name,short_names,category,subcategory` for the same rows.
"""
import csv
import gzip
import io
import sys

import numpy as np
from PIL import Image

src, out = sys.argv[1], sys.argv[2]
with open(f"{src}/emoji_meta.csv", newline="") as f:
    rows = list(csv.DictReader(f))
pixels = np.zeros((len(rows), 3, 32, 32), dtype=np.uint8)
for i, r in enumerate(rows):
    im = Image.open(f"{src}/images/{r['image']}").convert("RGBA")
    white = Image.new("RGBA", im.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, im).convert("RGB").resize((32, 32), Image.LANCZOS)
    pixels[i] = np.asarray(rgb).transpose(2, 0, 1)
with gzip.GzipFile(f"{out}/images_32.u8.gz", "wb", compresslevel=9, mtime=0) as f:
    f.write(pixels.tobytes())
buf = io.StringIO()
w = csv.writer(buf, lineterminator="\n")
w.writerow(["name", "short_names", "category", "subcategory"])
for r in rows:
    w.writerow([r["name"], r["short_names"], r["category"], r["subcategory"]])
with gzip.GzipFile(f"{out}/meta.csv.gz", "wb", compresslevel=9, mtime=0) as f:
    f.write(buf.getvalue().encode())
print(len(rows), "emoji")
