"""Two steps that make photos of digits look like MNIST's scans: an uneven paper's colour, and the stroke width.

- `paper_surface`: the paper's colour at every pixel, as a smooth quadratic surface fitted to a frame along
  the picture's edges with the ink left out (iteratively, by its distance from the fit). A photo's paper is lit
  unevenly: a gradient across the sheet, a soft shadow, a vignette. One paper colour for the whole picture turns
  the darker side of the sheet into "ink"; the surface follows it.
- `normalise_stroke`: pens, markers and pencils draw strokes from a quarter to twice MNIST's width relative to
  the digit's size. The width is estimated from the ink's area and outline (a stroke of length L and width w
  has area wL and outline about 2L) and brought back into MNIST's usual range by grey-level erosion or
  dilation, at a resolution three times the 20-px digit box.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# Pictures are subsampled to about this many pixels along the longer side for fitting the paper surface.
SURFACE_SAMPLE_SIDE = 64
SURFACE_ROUNDS = 4
SURFACE_FRAME_SHARE = 0.2  # width of the frame the surface is fitted to, as a share of the shorter side
# A pixel farther than this many robust standard deviations from the surface is ink (left out of the next fit).
SURFACE_OUTLIER_SIGMAS = 3.0
# The correction to the quadratic: medians of the paper pixels in a grid of blocks, ink and its fringe left out.
SURFACE_BLOCKS = 8
SURFACE_INK_MARGIN = 2  # sample pixels the ink mask is grown by
SURFACE_BLOCK_MIN_PAPER = 0.25  # a block with fewer paper pixels keeps the quadratic
SURFACE_SHADE_SHARE = 0.35  # shade up to this share of the strongest ink's distance is paper, not ink

# Stroke width of MNIST digits in the 20-px box, measured as here (crop, scale to the 60-px box, `stroke_width`)
# on the 5k training subset: median 2.03 px, 10th-90th percentile 1.48-2.87 px. Widths inside the band are left
# alone (natural variation); outside it they are moved to its edge.
MNIST_STROKE_BAND = (1.48, 2.87)
DIGIT_BOX = 20
WORK_SCALE = 3  # stroke changes happen on a (3 x 20)-px box
MAX_STROKE_STEPS = 8


def paper_surface(pixels: np.ndarray) -> tuple[np.ndarray, float]:
    """The paper's colour at each pixel of `pixels` ([H, W] or [H, W, 3], float32), same shape, and the median
    distance of the paper's own pixels from it (its noise: texture, sensor noise, JPEG artefacts).

    Two layers: a quadratic fitted to a frame along the edges (the light across the sheet), then a correction
    on a grid of blocks from the paper pixels' own medians (blotches, a vignette, a fold's shade).
    """
    height, width = pixels.shape[:2]
    channels = pixels.reshape(height, width, -1)
    step = max(1, -(-max(height, width) // SURFACE_SAMPLE_SIDE))
    rows, cols = np.mgrid[0:height:step, 0:width:step]
    sample = channels[rows, cols]
    coefficients, spread = _fit_quadratic(sample, rows, cols, (height, width))
    residual = sample - _evaluate(coefficients, rows / height - 0.5, cols / width - 0.5)
    distance = np.abs(residual).max(axis=2)
    # Ink stands out from the quadratic by more than the paper's noise and by a good share of the strongest ink;
    # gentler shade (a blotch, a vignette) is paper, and the blocks follow it.
    ink_level = max(SURFACE_OUTLIER_SIGMAS * spread, SURFACE_SHADE_SHARE * float(np.percentile(distance, 99)))
    paper = ~grow_mask(distance > ink_level, SURFACE_INK_MARGIN)
    correction = _block_medians(residual, paper)
    upsampled = _upsample(correction, sample.shape[:2])
    noise = float(np.median(np.abs(residual - upsampled).max(axis=2)[paper])) if paper.any() else spread
    full_rows = np.arange(height, dtype=np.float32)[:, None] / height - 0.5
    full_cols = np.arange(width, dtype=np.float32)[None, :] / width - 0.5
    surface = _evaluate(coefficients, full_rows, full_cols) + _upsample(correction, (height, width))
    return np.broadcast_to(surface, channels.shape).reshape(pixels.shape), noise


def _fit_quadratic(
    sample: np.ndarray, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, float]:
    """Quadratic coefficients [6, C] fitted robustly to a frame along the edges of the subsample `sample`
    ([h, w, C], taken at pixel `rows`, `cols` of a picture of `shape`), and the paper's robust spread."""
    height, width = shape
    r, c = rows / height - 0.5, cols / width - 0.5
    # Only a frame along the edges is fitted: a digit is drawn in the middle, and a large, blurred one there
    # could pass for a dark bowl in the paper. The frame's quadratic carries the lighting inwards.
    band = SURFACE_FRAME_SHARE * min(height, width)
    frame = (np.minimum(rows, height - 1 - rows) < band) | (np.minimum(cols, width - 1 - cols) < band)
    values = sample[frame]
    design = np.stack([np.broadcast_to(term, r.shape)[frame] for term in _quadratic_terms(r, c)], axis=1)
    # Start from a flat paper of the median colour (the ink is a minority of the pixels), then alternate: fit
    # the surface to the pixels near the last one, and keep the pixels near the new one.
    coefficients = np.zeros((design.shape[1], values.shape[1]))
    coefficients[0] = np.median(values, axis=0)
    keep = np.ones(len(values), dtype=bool)
    for _ in range(SURFACE_ROUNDS):
        residual = np.abs(values - design @ coefficients).max(axis=1)
        # Robust standard deviation of the paper pixels (at least 1 level), from those kept last round.
        spread = 1.4826 * float(np.median(residual[keep])) + 1.0
        keep = residual <= SURFACE_OUTLIER_SIGMAS * spread
        coefficients, *_ = np.linalg.lstsq(design[keep], values[keep], rcond=None)
    return coefficients, spread


def _evaluate(coefficients: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The quadratic at (rows, cols) (broadcasting), [..., C] float32."""
    terms = _quadratic_terms(rows, cols)
    return sum(
        np.asarray(term, dtype=np.float32)[..., None] * coefficient.astype(np.float32)
        for term, coefficient in zip(terms, coefficients, strict=True)
    )


def grow_mask(mask: np.ndarray, steps: int) -> np.ndarray:
    """A boolean mask grown by `steps` pixels (8-neighbourhood): ink plus its blurred fringe."""
    for _ in range(steps):
        padded = np.pad(mask, 1)
        mask = np.logical_or.reduce(
            [
                padded[1 + dr : 1 + dr + mask.shape[0], 1 + dc : 1 + dc + mask.shape[1]]
                for dr in (-1, 0, 1)
                for dc in (-1, 0, 1)
            ]
        )
    return mask


def _block_medians(residual: np.ndarray, paper: np.ndarray) -> np.ndarray:
    """[B, B, C]: the median residual of the paper pixels in each of B x B blocks; 0 where too few are paper."""
    height, width, depth = residual.shape
    row_edges = np.linspace(0, height, SURFACE_BLOCKS + 1).astype(int)
    col_edges = np.linspace(0, width, SURFACE_BLOCKS + 1).astype(int)
    correction = np.zeros((SURFACE_BLOCKS, SURFACE_BLOCKS, depth), dtype=np.float32)
    for i in range(SURFACE_BLOCKS):
        for j in range(SURFACE_BLOCKS):
            block = (slice(row_edges[i], row_edges[i + 1]), slice(col_edges[j], col_edges[j + 1]))
            own = paper[block]
            if own.size and np.count_nonzero(own) >= SURFACE_BLOCK_MIN_PAPER * own.size:
                correction[i, j] = np.median(residual[block][own], axis=0)
    return correction


def _upsample(correction: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """[B, B, C] block values -> [H, W, C], bilinear between block centres."""
    size = (shape[1], shape[0])
    planes = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(correction[..., k]), mode="F").resize(size, Image.Resampling.BILINEAR)
        )
        for k in range(correction.shape[2])
    ]
    return np.stack(planes, axis=2)


def _quadratic_terms(rows: np.ndarray, cols: np.ndarray) -> list[np.ndarray]:
    """1, r, c, r^2, rc, c^2 (arrays that broadcast against each other)."""
    return [np.ones_like(rows * cols), rows, cols, rows * rows, rows * cols, cols * cols]


def stroke_width(ink: np.ndarray) -> float:
    """Mean stroke width in pixels of ink in 0..1, from the area A and outline P of the pixels at half strength.

    A stroke of length L and width w has A = wL and P = 2(L + w), so w is the smaller root of
    w^2 - (P/2) w + A = 0. The outline counts pixel edges, which overstates slanted edges; MNIST's band
    below was measured the same way, so the bias cancels.
    """
    mask = ink >= 0.5
    outline = np.count_nonzero(mask[1:] != mask[:-1]) + np.count_nonzero(mask[:, 1:] != mask[:, :-1])
    outline += np.count_nonzero(mask[[0, -1]]) + np.count_nonzero(mask[:, [0, -1]])  # the crop's own edges
    area = np.count_nonzero(mask)
    if not outline:
        return 0.0
    quarter = outline / 4.0
    return float(quarter - np.sqrt(max(quarter * quarter - area, 0.0)))


def normalise_stroke(ink: np.ndarray) -> np.ndarray:
    """A cropped digit (ink 0..1) at three times the 20-px box, its stroke width moved into MNIST's band."""
    height, width = ink.shape
    scale = DIGIT_BOX * WORK_SCALE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    method = Image.Resampling.BOX if scale < 1.0 else Image.Resampling.BILINEAR
    work = np.clip(np.asarray(Image.fromarray(ink.astype(np.float32), mode="F").resize(size, method)), 0.0, 1.0)
    low, high = MNIST_STROKE_BAND
    # One erosion or dilation moves the width by about two work pixels; stop at the band's edge (or when a
    # thin stroke would vanish: erosion never goes below the band).
    for _ in range(MAX_STROKE_STEPS):
        measured = stroke_width(work) / WORK_SCALE
        if measured > high + 1.0 / WORK_SCALE:
            work = -_dilate(-work)
        elif 0 < measured < low - 1.0 / WORK_SCALE:
            work = _dilate(work)
        else:
            break
    return work


def _dilate(values: np.ndarray) -> np.ndarray:
    """Grey-level dilation with a 3x3 cross (edge pixels repeat outward)."""
    padded = np.pad(values, 1, mode="edge")
    return np.maximum.reduce(
        [
            padded[1:-1, 1:-1],
            padded[:-2, 1:-1],
            padded[2:, 1:-1],
            padded[1:-1, :-2],
            padded[1:-1, 2:],
        ]
    )
