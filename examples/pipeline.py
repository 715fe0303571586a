"""Stamping inside a generation pipeline: no temporary files, one store, one identity.

Run: .venv/bin/python examples/pipeline.py OUTDIR
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

import provenance


def stand_in_generator(seed: int, size: tuple[int, int] = (768, 512)) -> Image.Image:
    """Where a diffusion model would be: makes a textured image from a seed."""
    rng = np.random.default_rng(seed)
    x0, y0 = rng.uniform(-1.5, 0.0), rng.uniform(-0.8, 0.2)
    fractal = Image.effect_mandelbrot(size, (x0, y0, x0 + 1.2, y0 + 0.8), 256)
    colours = rng.integers(0, 256, size=(256, 3), dtype=np.uint8)
    rgb = colours[np.asarray(fractal)]
    grain = rng.normal(0, 6, size=rgb.shape)
    return Image.fromarray(np.clip(rgb + grain, 0, 255).astype(np.uint8))


def main(outdir: Path) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    identity = provenance.load_identity_dir()
    info = provenance.GenerationInfo(generator="pipeline-example", generator_version="1.0",
                                     model="stand-in-fractal", model_version="0.1")
    with provenance.open_store() as store:
        for seed in range(3):
            image = stand_in_generator(seed)
            described = replace(info, prompt=f"fractal #{seed}")  # only its digest is stored
            result = provenance.stamp(image, identity, described, store=store, format="JPEG")
            (outdir / f"generated-{seed}.jpg").write_bytes(result.data)
            print(f"generated-{seed}.jpg  identifier {result.identifier}  {result.manifest_label}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "examples/output/pipeline"))
