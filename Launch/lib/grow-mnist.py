# Launch/lib/grow-mnist.py MNIST_DIR N OUT_PREFIX: full MNIST (train then test, 70,000 images) grown to N images for
# Launch/scale-study: the originals first, then copies of originals drawn at random (seed 0), each moved within the
# recipe's augmentation's range (deepcluster's shift=0.1,rotate=10: a rotation of up to 10 degrees about the centre
# and a shift of up to 10% of the side; here the nearest pixel, where the recipe interpolates; zero outside). N <= 70,000 takes the first N.
# Writes OUT_PREFIX.npy (N, 784) uint8 and OUT_PREFIX-labels.npy (N,) int64. numpy only; about 1 s per 100,000 images.
import gzip
import sys

import numpy as np

root, n, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]


def idx(path, header):
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=header)


images = np.concatenate([idx(f"{root}/train-images-idx3-ubyte.gz", 16), idx(f"{root}/t10k-images-idx3-ubyte.gz", 16)])
images = images.reshape(-1, 28, 28)
labels = np.concatenate([idx(f"{root}/train-labels-idx1-ubyte.gz", 8), idx(f"{root}/t10k-labels-idx1-ubyte.gz", 8)])
out = np.empty((n, 28, 28), dtype=np.uint8)
out_labels = np.empty(n, dtype=np.int64)
first = min(n, len(images))
out[:first], out_labels[:first] = images[:first], labels[:first]
rng = np.random.default_rng(0)
ys, xs = np.mgrid[0:28, 0:28].astype(np.float32) - 13.5
chunk = 20_000
for start in range(first, n, chunk):
    count = min(chunk, n - start)
    source = rng.integers(0, len(images), count)
    angle = np.deg2rad(rng.uniform(-10, 10, count)).astype(np.float32)[:, None, None]
    dy, dx = (rng.uniform(-0.1, 0.1, (2, count)) * 28).astype(np.float32)[:, :, None, None]
    # Each output pixel reads the source pixel that the inverse motion brings it to.
    cos, sin = np.cos(angle), np.sin(angle)
    ty, tx = ys[None] - dy, xs[None] - dx
    sy = np.rint(cos * ty - sin * tx + 13.5).astype(np.int64)
    sx = np.rint(sin * ty + cos * tx + 13.5).astype(np.int64)
    inside = (sy >= 0) & (sy < 28) & (sx >= 0) & (sx < 28)
    moved = images[source[:, None, None], np.clip(sy, 0, 27), np.clip(sx, 0, 27)]
    out[start:start + count] = np.where(inside, moved, 0)
    out_labels[start:start + count] = labels[source]
np.save(f"{prefix}.npy", out.reshape(n, 784))
np.save(f"{prefix}-labels.npy", out_labels)
print(f"{prefix}.npy: {n} images ({first} originals, {n - first} moved copies)")
