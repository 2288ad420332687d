#!/usr/bin/env python3
"""PyTorch CPU benchmark of one training step of the DEC autoencoder.

Mirrors `deepcluster bench` (Launch/precision-study runs both back to back):
  * pretrain: full autoencoder, MSE reconstruction loss, Adam(lr=1e-3)
  * dec:      encoder + 10x10 cluster centres, DEC KL(p||q) loss, SGD(lr=0.01, momentum=0.9)
Batch 256, random inputs in [0,1], float32 parameters. bf16 = autocast("cpu", bfloat16)
around forward + loss. Reports median samples/s over --steps timed steps after --warmup.
"""
import argparse
import statistics
import time

import torch
import torch.nn as nn

BATCH = 256
IN_DIM = 784
ENC_DIMS = [784, 500, 500, 2000, 10]
N_CLUSTERS = 10


def mlp(dims):
    """Linear layers with ReLU between them; last layer linear."""
    layers = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Autoencoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = mlp(ENC_DIMS)                  # 784-500-500-2000-10
        self.decoder = mlp(list(reversed(ENC_DIMS)))  # 10-2000-500-500-784

    def forward(self, x):
        return self.decoder(self.encoder(x))


class DEC(nn.Module):
    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder
        self.centres = nn.Parameter(torch.randn(N_CLUSTERS, ENC_DIMS[-1]))

    def soft_assign(self, x):
        z = self.encoder(x)
        # ||z_i - mu_j||^2, computed in float32 for stability
        d2 = ((z.float().unsqueeze(1) - self.centres.unsqueeze(0)) ** 2).sum(-1)
        q = 1.0 / (1.0 + d2)
        return q / q.sum(dim=1, keepdim=True)


def target_distribution(q):
    f = q.sum(dim=0)
    p = q ** 2 / f
    return p / p.sum(dim=1, keepdim=True)


def dec_loss(q, p):
    # KL(p || q) = sum p log(p/q) / batch
    return (p * (torch.log(p) - torch.log(q))).sum() / q.shape[0]


def autocast_ctx(precision):
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def time_steps(step_fn, steps, warmup):
    for _ in range(warmup):
        step_fn()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step_fn()
        times.append(time.perf_counter() - t0)
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--precision", choices=["float32", "bf16"], default="float32")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=["pretrain", "dec"], default=None,
                    help="run just one step kind (default: both)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    print(f"torch {torch.__version__}  num_threads={torch.get_num_threads()}  "
          f"mkldnn.is_available={torch.backends.mkldnn.is_available()}  "
          f"cpu_capability={torch.backends.cpu.get_cpu_capability()}")
    for line in torch.__config__.show().splitlines():
        line = line.strip().lstrip("- ")
        if line.startswith(("Intel(R)", "OpenMP", "CPU capability")):
            print("config:", line)

    x = torch.rand(BATCH, IN_DIM)  # float32 in [0,1]
    label = f"torch {torch.__version__} {{}} {args.precision} threads {args.threads}"

    def report(kind, times):
        med = statistics.median(times)
        print(f"{label.format(kind)}: {BATCH / med:.0f} samples/s "
              f"(median of {len(times)} steps; median step {med * 1e3:.3f} ms, "
              f"min {min(times) * 1e3:.3f} ms)", flush=True)

    # ---- pretrain step -------------------------------------------------
    if args.only in (None, "pretrain"):
        ae = Autoencoder()
        opt = torch.optim.Adam(ae.parameters(), lr=1e-3)
        mse = nn.MSELoss()

        def pretrain_step():
            with autocast_ctx(args.precision):
                out = ae(x)
                loss = mse(out.float(), x)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss

        report("pretrain", time_steps(pretrain_step, args.steps, args.warmup))

    # ---- dec step --------------------------------------------------------
    if args.only in (None, "dec"):
        dec = DEC(mlp(ENC_DIMS))
        sgd = torch.optim.SGD(dec.parameters(), lr=0.01, momentum=0.9)
        # target p fixed per batch, computed once beforehand from q
        with torch.no_grad(), autocast_ctx(args.precision):
            p = target_distribution(dec.soft_assign(x)).float()

        def dec_step():
            with autocast_ctx(args.precision):
                q = dec.soft_assign(x)
                loss = dec_loss(q.float(), p)
            loss.backward()
            sgd.step()
            sgd.zero_grad(set_to_none=True)
            return loss

        report("dec", time_steps(dec_step, args.steps, args.warmup))


if __name__ == "__main__":
    main()
