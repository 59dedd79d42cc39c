#!/usr/bin/env python3
"""Fréchet distance (FD) of edge-ddim samples to the Fashion-MNIST test set, in the 128-d penultimate
features of the small classifier in tools/reference/fashion-classifier/ (trained by
tools/reference/train_fashion_classifier.py). This is FID with that classifier in place of Inception.

    python3 tools/quality/fd.py SAMPLES.npy [SAMPLES.npy ...]     # one line per file: N and FD
    python3 tools/quality/fd.py --sanity [--data DIR] [--count N]  # FD of N training / uniform-noise images

SAMPLES.npy is what `edge-ddim sample --npy` writes: float32 N×1×32×32 x₀, unclamped model-space values.
Samples become images exactly as edge-ddim's PNG writer makes them, pixel = rint(255·clamp(x/2 + 0.5, 0, 1))
in float32 (ties to even, NaN → 0), and then the classifier's input v/127.5 − 1.

FD = |μ₁ − μ₂|² + Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½) in float64 with scipy.linalg.sqrtm, as pytorch-fid computes it
(Σ with ddof = 1; a tiny imaginary part of the square root is discarded; if the square root is not finite,
ε = 1e-6 is added to both diagonals). The test set's μ and Σ come from test_features.npz, so no dataset is
needed. FD is biased upwards at small N: compare numbers at the same N only.

Importable: samples_to_pixels, pixels_to_input, features, feature_stats, frechet_distance, fd_of_samples,
fd_of_pixels, reference_stats.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import sys
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import linalg

REPO_ROOT = Path(__file__).resolve().parents[2]
CLASSIFIER_DIR = REPO_ROOT / "tools" / "reference" / "fashion-classifier"
TRAIN_SCRIPT = REPO_ROOT / "tools" / "reference" / "train_fashion_classifier.py"
DEFAULT_DATA = Path("/usr/share/datasets/fashion-mnist")


@lru_cache(maxsize=1)
def _classifier_module():
    """tools/reference/train_fashion_classifier.py, which defines the network and its preprocessing."""
    spec = importlib.util.spec_from_file_location("train_fashion_classifier", TRAIN_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------------------------------------
# Samples → pixels → classifier input
# ----------------------------------------------------------------------------------------------------------

def samples_to_pixels(x: np.ndarray) -> np.ndarray:
    """Model-space x₀ → uint8 pixels as edge-ddim's PNG writer (diffusersPixelValue in
    Sources/EdgeImageIO/PNG.swift): rint(255·clamp(x/2 + 0.5, 0, 1)), every step in float32, NaN → 0."""
    x = np.asarray(x, dtype=np.float32)
    unit = np.clip(x / np.float32(2) + np.float32(0.5), np.float32(0), np.float32(1))
    unit = np.where(np.isnan(unit), np.float32(0), unit)
    return np.rint(unit * np.float32(255)).astype(np.uint8)


def pixels_to_input(pixels: np.ndarray) -> np.ndarray:
    """uint8 N×1×32×32 → the classifier's float32 input v/127.5 − 1."""
    return _classifier_module().to_model_input(pixels)


def samples_to_unit(x: np.ndarray) -> np.ndarray:
    """Model-space x₀ → float32 pixels in [0, 1] without 8-bit rounding: clamp(x/2 + 0.5, 0, 1), NaN → 0."""
    x = np.asarray(x, dtype=np.float32)
    unit = np.clip(x / np.float32(2) + np.float32(0.5), np.float32(0), np.float32(1))
    return np.where(np.isnan(unit), np.float32(0), unit)


def load_samples(path: str | Path) -> np.ndarray:
    x = np.load(path)
    if x.ndim != 4 or x.shape[1:] != (1, 32, 32):
        raise ValueError(f"{path}: expected N×1×32×32 samples, got shape {x.shape}")
    return x.astype(np.float32, copy=False)


# ----------------------------------------------------------------------------------------------------------
# Features and statistics
# ----------------------------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def classifier():
    import torch
    torch.set_num_threads(min(2, torch.get_num_threads()))
    return _classifier_module().load_classifier(CLASSIFIER_DIR)


def classifier_sha256() -> str:
    """sha256 of classifier.safetensors (FD values are only comparable for the same classifier)."""
    return hashlib.sha256((CLASSIFIER_DIR / "classifier.safetensors").read_bytes()).hexdigest()


def features(pixels: np.ndarray) -> np.ndarray:
    """uint8 N×1×32×32 pixels → N×128 float32 penultimate features."""
    return _classifier_module().extract_features(classifier(), pixels_to_input(pixels))


def feature_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """μ and Σ (ddof = 1) in float64."""
    f = np.asarray(feats, dtype=np.float64)
    if f.shape[0] < 2:
        raise ValueError("FD needs at least 2 images")
    return f.mean(axis=0), np.cov(f, rowvar=False)


@lru_cache(maxsize=1)
def reference_stats() -> tuple[np.ndarray, np.ndarray]:
    """μ and Σ of the 10,000 test images (test_features.npz)."""
    with np.load(CLASSIFIER_DIR / "test_features.npz") as z:
        return z["mu"].astype(np.float64), z["sigma"].astype(np.float64)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """|μ₁ − μ₂|² + Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½), as pytorch-fid's calculate_frechet_distance."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    assert mu1.shape == mu2.shape and sigma1.shape == sigma2.shape
    diff = mu1 - mu2
    with warnings.catch_warnings():
        # Σ₁ is singular whenever N ≤ 128 (or a feature is constant, as for noise): expected, not an error.
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        print(f"fd: sqrtm of Σ₁Σ₂ is not finite; adding {eps} to the diagonals", file=sys.stderr)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"sqrtm has a large imaginary component {np.max(np.abs(covmean.imag)):.3g}")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fd_of_pixels(pixels: np.ndarray) -> float:
    """FD of uint8 N×1×32×32 images to the test set."""
    mu, sigma = feature_stats(features(pixels))
    return frechet_distance(mu, sigma, *reference_stats())


def fd_of_samples(x: np.ndarray) -> float:
    """FD of model-space samples (edge-ddim's --npy) to the test set."""
    return fd_of_pixels(samples_to_pixels(x))


# ----------------------------------------------------------------------------------------------------------
# Sanity references
# ----------------------------------------------------------------------------------------------------------

def training_pixels(count: int, data_dir: Path = DEFAULT_DATA) -> np.ndarray:
    """The first `count` training images, padded to 1×32×32 uint8 as the DDPM saw them."""
    m = _classifier_module()
    images = m.read_idx(data_dir / m.FILES["train_images"])[:count]
    return m.pad_to_32(images)


def noise_pixels(count: int, seed: int = 0) -> np.ndarray:
    """Uniform noise: model-space x ~ U(−1, 1) through samples_to_pixels (≈ uniform bytes)."""
    x = np.random.default_rng(seed).uniform(-1, 1, size=(count, 1, 32, 32)).astype(np.float32)
    return samples_to_pixels(x)


def main() -> None:
    ap = argparse.ArgumentParser(description="FD of edge-ddim samples (.npy) to the Fashion-MNIST test set.")
    ap.add_argument("samples", nargs="*", help="float32 N×1×32×32 .npy files written by edge-ddim --npy")
    ap.add_argument("--sanity", action="store_true",
                    help="print the FD of --count training images (the floor at that N) and of uniform noise")
    ap.add_argument("--count", type=int, default=1000, help="images for --sanity (default 1000)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Fashion-MNIST folder (--sanity only)")
    args = ap.parse_args()
    if not args.samples and not args.sanity:
        ap.error("give SAMPLES.npy files or --sanity")
    for path in args.samples:
        x = load_samples(path)
        print(f"{path}\tN={x.shape[0]}\tFD={fd_of_samples(x):.4f}")
    if args.sanity:
        n = args.count
        print(f"training images (first {n})\tN={n}\tFD={fd_of_pixels(training_pixels(n, args.data)):.4f}")
        print(f"uniform noise (seed 0)\tN={n}\tFD={fd_of_pixels(noise_pixels(n)):.4f}")


if __name__ == "__main__":
    main()
