#!/usr/bin/env python3
"""The main job as a Python user would assemble it (issue 28's comparison): a PyTorch autoencoder, umap-learn,
scikit-learn's Gaussian mixture, then DEC in PyTorch, with deepcluster's recipe on the embedded set (MNIST t10k):

  pretraining  784-500-500-2000-10 and its mirror (ReLU inside, linear code and output), Glorot init, Adam 1e-3,
               batch 256, 100 epochs, each batch shifted (up to 10% of the side) and rotated (up to 10 degrees), 20%
               of its inputs zeroed, MSE against the unmasked batch
  start        umap-learn (20 neighbours, 10 components, min_dist 0) of the codes, a full-covariance mixture of 10
  fine-tuning  DEC from the mixture (centres: posterior-weighted means of the codes), SGD 0.01 momentum 0.9, batch
               256, augmented batches, the target P recomputed every epoch, stop below 0.1% changed labels, 100 epochs
               at most

Prints each phase's seconds and ACC / NMI. Needs torch, umap-learn and scikit-learn (`python3 -m venv V && V/bin/pip
install torch umap-learn scikit-learn`). `--bf16` wraps the forward passes in torch.autocast (bf16), as a PyTorch user
would. umap-learn compiles its numba code on first use: run it twice, or count that once.
  python Launch/python-pipeline.py --threads 2 --seed 0 [--bf16]
"""
import argparse
import gzip
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def mlp(dims):
    layers = []
    for i in range(len(dims) - 1):
        linear = nn.Linear(dims[i], dims[i + 1])
        nn.init.xavier_uniform_(linear.weight)
        nn.init.zeros_(linear.bias)
        layers.append(linear)
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def augment(x, generator):
    """Each 28x28 sample shifted by up to 10% of the side and rotated by up to 10 degrees (bilinear)."""
    b = x.shape[0]
    angle = (torch.rand(b, generator=generator) * 2 - 1) * math.radians(10)
    shift = (torch.rand(b, 2, generator=generator) * 2 - 1) * 0.2  # 10% of the side: 0.2 in [-1, 1] units
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    images = x.view(b, 1, 28, 28)
    grid = F.affine_grid(theta, images.shape, align_corners=False)
    return F.grid_sample(images, grid, align_corners=False, padding_mode="zeros").view(b, 784)


def accuracy(labels, clusters, k):
    from scipy.optimize import linear_sum_assignment
    table = np.zeros((k, labels.max() + 1), dtype=np.int64)
    np.add.at(table, (clusters, labels), 1)
    rows, cols = linear_sum_assignment(-table)
    return table[rows, cols].sum() / len(labels)


def scores(labels, clusters, k):
    from sklearn.metrics import normalized_mutual_info_score
    return f"ACC {accuracy(labels, clusters, k):.4f}  NMI {normalized_mutual_info_score(labels, clusters):.4f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="runs/mnist-full", help="a directory with t10k-images-idx3-ubyte.gz and labels")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=100, help="pretraining epochs")
    ap.add_argument("--bf16", action="store_true", help="torch.autocast(cpu, bfloat16) around the forward passes")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    started = time.perf_counter()
    x = torch.from_numpy(idx(f"{args.data}/t10k-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255)
    labels = idx(f"{args.data}/t10k-labels-idx1-ubyte.gz").astype(np.int64)
    n, k, batch = x.shape[0], 10, 256
    widths = [784, 500, 500, 2000, 10]
    encoder, decoder = mlp(widths), mlp(list(reversed(widths)))
    autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16)

    # Pretraining.
    phase = time.perf_counter()
    adam = torch.optim.Adam(list(encoder.parameters()) + list(decoder.parameters()), lr=1e-3)
    for epoch in range(args.epochs):
        order, total = torch.randperm(n, generator=generator), 0.0
        for s in range(0, n, batch):
            clean = augment(x[order[s:s + batch]], generator)
            noisy = clean * (torch.rand(clean.shape, generator=generator) >= 0.2)
            with autocast():
                reconstruction = decoder(encoder(noisy))
            loss = F.mse_loss(reconstruction.float(), clean)
            adam.zero_grad(set_to_none=True)
            loss.backward()
            adam.step()
            total += loss.item() * clean.shape[0]
        if epoch % 10 == 9 or epoch == args.epochs - 1:
            print(f"pretrain epoch {epoch + 1}/{args.epochs}  loss {total / n:.5f}  {time.perf_counter() - phase:.0f}s", flush=True)
    pretrain_seconds = time.perf_counter() - phase

    # The start: umap-learn and scikit-learn's mixture on the codes.
    phase = time.perf_counter()
    import umap
    from sklearn.mixture import GaussianMixture
    with torch.no_grad(), autocast():
        codes = encoder(x).float().numpy()
    layout = umap.UMAP(n_neighbors=20, n_components=10, min_dist=0.0, random_state=args.seed).fit_transform(codes)
    mixture = GaussianMixture(k, covariance_type="full", random_state=args.seed).fit(layout)
    posteriors = mixture.predict_proba(layout)
    start = posteriors.argmax(1)
    start_seconds = time.perf_counter() - phase
    print(f"start (umap-learn + GaussianMixture, {start_seconds:.1f}s): {scores(labels, start, k)}", flush=True)

    # DEC.
    phase = time.perf_counter()
    centres = nn.Parameter(torch.from_numpy((posteriors.T @ codes) / posteriors.sum(0)[:, None]).float())
    sgd = torch.optim.SGD(list(encoder.parameters()) + [centres], lr=0.01, momentum=0.9)

    def soft_assign(z):
        q = 1.0 / (1.0 + ((z.unsqueeze(1) - centres.unsqueeze(0)) ** 2).sum(-1))
        return q / q.sum(1, keepdim=True)

    previous = start
    for epoch in range(100):
        with torch.no_grad(), autocast():
            q = soft_assign(encoder(x).float())
        assigned = q.argmax(1).numpy()
        changed = (assigned != previous).mean()
        previous = assigned
        if epoch > 0 and changed < 0.001:
            print(f"stopping after {epoch} epochs: {100 * changed:.3f}% changed")
            break
        p = q ** 2 / q.sum(0)
        p = p / p.sum(1, keepdim=True)
        order = torch.randperm(n, generator=generator)
        for s in range(0, n, batch):
            rows = order[s:s + batch]
            with autocast():
                z = encoder(augment(x[rows], generator))
            loss = F.kl_div(soft_assign(z.float()).log(), p[rows], reduction="batchmean")
            sgd.zero_grad(set_to_none=True)
            loss.backward()
            sgd.step()
    finetune_seconds = time.perf_counter() - phase
    with torch.no_grad(), autocast():
        final = soft_assign(encoder(x).float()).argmax(1).numpy()
    print(f"final DEC: {scores(labels, final, k)}  (pretraining {pretrain_seconds:.0f}s, start {start_seconds:.0f}s, "
          f"fine-tuning {finetune_seconds:.0f}s, total {time.perf_counter() - started:.0f}s)")


if __name__ == "__main__":
    main()
