#!/usr/bin/env python3
"""Train the small Fashion-MNIST CNN whose 128-d penultimate features tools/quality/fd.py uses for FD.

Writes tools/reference/fashion-classifier/:

    classifier.safetensors   the weights (fp16; evaluated in fp32), ~300 kB
    classifier.json          architecture, preprocessing, training settings, test accuracy,
                             sha256 of the dataset files and of the outputs, versions, training seconds
    test_features.npz        mu (128, float64) and sigma (128×128, float64, ddof = 1) of the penultimate
                             features of the 10,000 test images, so FD needs no dataset

Preprocessing is the DDPM's: the 28×28 uint8 image padded with black to 32×32 (2 pixels each side),
then v/127.5 − 1 (float32), so the background is −1.

Deterministic: fixed seed, torch.use_deterministic_algorithms(True), a fixed thread count (--threads,
default 2), CPU only. Running it again with the same options, torch build and CPU gives the same
weights (byte-identical classifier.safetensors and test_features.npz); only the times in
classifier.json differ. About 4 minutes on 2 cores.

Usage:  python3 tools/reference/train_fashion_classifier.py [--data DIR] [--out DIR] [--epochs N]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import platform
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = Path("/usr/share/datasets/fashion-mnist")
DEFAULT_OUT = REPO_ROOT / "tools" / "reference" / "fashion-classifier"
FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
FEATURE_DIM = 128
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


# ----------------------------------------------------------------------------------------------------------
# Model (fd.py imports this module for FashionCNN, pad_to_32 and to_model_input)
# ----------------------------------------------------------------------------------------------------------

def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class FashionCNN(nn.Module):
    """1×32×32 in [−1, 1] → conv32 → pool → conv64 → conv64 → pool → conv128 → global average pool
    → Linear(128, 128) + BatchNorm + ReLU (the 128-d features) → Linear(128, 10) (logits). Every conv is
    3×3, padding 1, no bias, followed by BatchNorm and ReLU; pools are 2×2 max pools. The BatchNorm of the
    feature layer keeps its units alive (without it ~15% of them were always 0, and Σ was singular)."""

    ARCHITECTURE = (
        "conv3x3(1→32)+BN+ReLU @32×32, maxpool2 → conv3x3(32→64)+BN+ReLU, conv3x3(64→64)+BN+ReLU @16×16, "
        "maxpool2 → conv3x3(64→128)+BN+ReLU @8×8 → global average pool (128) → Linear(128→128)+BN+ReLU "
        "[features] → Linear(128→10) [logits]"
    )

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv_bn_relu(1, 32), nn.MaxPool2d(2),
            *_conv_bn_relu(32, 64), *_conv_bn_relu(64, 64), nn.MaxPool2d(2),
            *_conv_bn_relu(64, 128),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.feature = nn.Linear(128, FEATURE_DIM, bias=False)
        self.feature_norm = nn.BatchNorm1d(FEATURE_DIM)
        self.head = nn.Linear(FEATURE_DIM, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.feature_norm(self.feature(self.body(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def pad_to_32(images_u8: np.ndarray) -> np.ndarray:
    """N×28×28 uint8 → N×1×32×32 uint8, black (0) border of 2 pixels, as the DDPM's training data."""
    n = images_u8.shape[0]
    out = np.zeros((n, 1, 32, 32), dtype=np.uint8)
    out[:, 0, 2:30, 2:30] = images_u8
    return out


def to_model_input(pixels_u8: np.ndarray) -> np.ndarray:
    """uint8 pixels → float32 v/127.5 − 1 (the classifier's and the DDPM's input range [−1, 1])."""
    return pixels_u8.astype(np.float32) / np.float32(127.5) - np.float32(1.0)


def load_state(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file
    return {k: v.to(torch.float32) for k, v in load_file(str(path)).items()}


def load_classifier(directory: Path = DEFAULT_OUT) -> FashionCNN:
    """The stored classifier in eval mode, weights converted to fp32."""
    model = FashionCNN()
    state = load_state(directory / "classifier.safetensors")
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise RuntimeError(f"classifier weights do not match FashionCNN: missing {missing}, unexpected {unexpected}")
    return model.eval()


@torch.no_grad()
def extract_features(model: FashionCNN, inputs: np.ndarray, batch: int = 1000) -> np.ndarray:
    """N×1×32×32 float32 model inputs → N×128 float32 features."""
    out = []
    for i in range(0, inputs.shape[0], batch):
        out.append(model.features(torch.from_numpy(np.ascontiguousarray(inputs[i:i + batch]))).numpy())
    return np.concatenate(out) if out else np.zeros((0, FEATURE_DIM), np.float32)


# ----------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------

def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip'd): uint8 images N×28×28 (magic 2051) or labels N (magic 2049)."""
    data = gzip.open(path, "rb").read()
    magic = int.from_bytes(data[0:4], "big")
    if magic == 2051:
        n, h, w = (int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(3))
        return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, h, w).copy()
    if magic == 2049:
        n = int.from_bytes(data[4:8], "big")
        return np.frombuffer(data, dtype=np.uint8, offset=8, count=n).copy()
    raise ValueError(f"{path}: not an IDX image/label file (magic {magic})")


def load_split(data_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(N×28×28 uint8 images, N uint8 labels) of 'train' or 'test'."""
    images = read_idx(data_dir / FILES[f"{split}_images"])
    labels = read_idx(data_dir / FILES[f"{split}_labels"])
    assert images.shape[0] == labels.shape[0]
    return images, labels


# ----------------------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------------------

def write_npz_deterministic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez, but with a fixed zip timestamp so that the same arrays give the same bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arr), allow_pickle=False)
            z.writestr(info, member.getvalue())
    path.write_bytes(buf.getvalue())


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = features.astype(np.float64)
    return f.mean(axis=0), np.cov(f, rowvar=False)


@torch.no_grad()
def accuracy(model: nn.Module, inputs: np.ndarray, labels: np.ndarray, batch: int = 1000) -> float:
    model.eval()
    correct = 0
    for i in range(0, inputs.shape[0], batch):
        logits = model(torch.from_numpy(inputs[i:i + batch]))
        correct += int((logits.argmax(1).numpy() == labels[i:i + batch]).sum())
    return correct / inputs.shape[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with the four Fashion-MNIST .gz files")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3, help="peak learning rate of the one-cycle schedule")
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help=argparse.SUPPRESS)  # train on the first N images (testing)
    args = ap.parse_args()

    t_start = time.time()
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)

    dataset_sha = {name: sha256_file(args.data / fname) for name, fname in FILES.items()}
    train_u8, train_labels = load_split(args.data, "train")
    test_u8, test_labels = load_split(args.data, "test")
    if args.limit:
        train_u8, train_labels = train_u8[:args.limit], train_labels[:args.limit]
    x_train = torch.from_numpy(to_model_input(pad_to_32(train_u8)))
    y_train = torch.from_numpy(train_labels.astype(np.int64))
    x_test = to_model_input(pad_to_32(test_u8))
    print(f"train {tuple(x_train.shape)}, test {x_test.shape}, threads {torch.get_num_threads()}", flush=True)

    model = FashionCNN()
    params = sum(p.numel() for p in model.parameters())
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
    steps_per_epoch = (x_train.shape[0] + args.batch - 1) // args.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, epochs=args.epochs,
                                                steps_per_epoch=steps_per_epoch, pct_start=0.25)
    gen = torch.Generator().manual_seed(args.seed)

    t_train = time.time()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(x_train.shape[0], generator=gen)
        total, correct, loss_sum = 0, 0, 0.0
        for i in range(steps_per_epoch):
            idx = perm[i * args.batch:(i + 1) * args.batch]
            xb, yb = x_train[idx], y_train[idx]
            flip = torch.rand(xb.shape[0], generator=gen) < 0.5      # random horizontal flips
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += yb.shape[0]
            correct += int((logits.argmax(1) == yb).sum())
            loss_sum += float(loss.detach()) * yb.shape[0]
        acc = accuracy(model, x_test, test_labels)
        print(f"epoch {epoch + 1}/{args.epochs}: loss {loss_sum / total:.4f}, train acc {correct / total:.4f}, "
              f"test acc {acc:.4f}, {time.time() - t_train:.0f} s", flush=True)
    train_seconds = time.time() - t_train

    # Store fp16 and evaluate exactly what is stored (reloaded, in fp32).
    from safetensors.torch import save_file
    args.out.mkdir(parents=True, exist_ok=True)
    weights_path = args.out / "classifier.safetensors"
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    # One metadata key only: safetensors writes the metadata map in a random order (a Rust HashMap), so
    # several keys would make the bytes differ from run to run.
    save_file(state, str(weights_path), metadata={"format": "pt"})
    weights_path.chmod(0o644)              # safetensors creates the file 0600
    stored = load_classifier(args.out)
    test_acc = accuracy(stored, x_test, test_labels)
    per_class = {}
    with torch.no_grad():
        pred = np.concatenate([stored(torch.from_numpy(x_test[i:i + 1000])).argmax(1).numpy()
                               for i in range(0, x_test.shape[0], 1000)])
    for c, name in enumerate(CLASSES):
        per_class[name] = round(float((pred[test_labels == c] == c).mean()), 4)
    feats = extract_features(stored, x_test)
    mu, sigma = feature_stats(feats)
    features_path = args.out / "test_features.npz"
    write_npz_deterministic(features_path, {"mu": mu, "sigma": sigma, "n": np.array(feats.shape[0], np.int64)})

    import safetensors
    info = {
        "model": "FashionCNN (tools/reference/train_fashion_classifier.py)",
        "architecture": FashionCNN.ARCHITECTURE,
        "parameters": params,
        "weights_dtype": "fp16 (evaluated in fp32)",
        "feature_layer": "features(): ReLU(BatchNorm(Linear(128→128)(global average pool))), 128-d, the input of the logits layer",
        "preprocessing": "28×28 uint8 padded with 0 to 32×32 (2 px each side), then float32 v/127.5 − 1 → [−1, 1]",
        "training": {
            "images": int(x_train.shape[0]), "epochs": args.epochs, "batch": args.batch,
            "optimizer": f"AdamW(weight_decay={args.weight_decay} on conv/linear weights, 0 on biases/norms)",
            "lr_schedule": f"OneCycleLR(max_lr={args.lr}, pct_start=0.25, cosine)",
            "augmentation": "random horizontal flip (p = 0.5)", "loss": "cross-entropy",
            "seed": args.seed, "threads": args.threads, "deterministic_algorithms": True, "device": "cpu",
        },
        "test_accuracy": round(test_acc, 4),
        "test_accuracy_per_class": per_class,
        "test_images": int(x_test.shape[0]),
        "test_features": {"file": "test_features.npz", "arrays": "mu (128, f8), sigma (128×128, f8, np.cov ddof=1), n",
                          "sha256": sha256_file(features_path)},
        "weights_sha256": sha256_file(weights_path),
        "weights_bytes": weights_path.stat().st_size,
        "dataset": {"dir": str(args.data), "sha256": {FILES[k]: v for k, v in dataset_sha.items()}},
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
                     "safetensors": safetensors.__version__, "cpu": platform.machine()},
        "training_seconds": round(train_seconds, 1),
        "total_seconds": round(time.time() - t_start, 1),
    }
    (args.out / "classifier.json").write_text(json.dumps(info, indent=1, ensure_ascii=False) + "\n")
    print(f"test accuracy {test_acc:.4f} (stored fp16 weights), {params} parameters, "
          f"{weights_path.stat().st_size} bytes, training {train_seconds:.0f} s")
    print(f"wrote {weights_path}, {features_path}, {args.out / 'classifier.json'}")


if __name__ == "__main__":
    sys.exit(main())
