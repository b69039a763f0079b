"""The ACAI regulariser on an autoencoder defined here, trained on the lines benchmark.

    python examples/own_model.py [--steps 400] [--lam 0.5] [--seed 0]

A small MLP encoder and decoder (nothing from acai.core.nets) get the regulariser with
`acai.regularize`: a critic built for 1x32x32 images, eq. 1 for the critic and
eq. 2's λ‖d(x̂_α)‖² added to our own reconstruction loss. At the end the lines
metrics (Mean Distance, Smoothness; appendix A) score 256 interpolations.
Run it with --lam 0 for the same autoencoder without the regulariser's effect.
A few hundred steps take well under a minute on a laptop CPU; they show the
API, not the paper's numbers (those take 2^24 samples).
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

import acai
from acai import lines
from acai.core.evaluations import lines_interpolations


def mlp_autoencoder(code_size: int = 32, hidden: int = 256) -> tuple[nn.Module, nn.Module]:
    """x (B, 1, 32, 32) in [-1, 1] -> code (B, code_size) -> x̂ (B, 1, 32, 32) in [-1, 1]."""
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, hidden), nn.LeakyReLU(0.2),
                            nn.Linear(hidden, code_size))
    decoder = nn.Sequential(nn.Linear(code_size, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 32 * 32), nn.Tanh(),
                            nn.Unflatten(1, (1, 32, 32)))
    return encoder, decoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lam", type=float, default=0.5, help="λ of eq. 2 (0: the regulariser has no effect)")
    parser.add_argument("--gamma", type=float, default=0.2, help="γ of eq. 1")
    parser.add_argument("--critic-depth", type=int, default=8, help="width of the critic's first layer")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)  # the weights' initial values
    encoder, decoder = mlp_autoencoder()
    model = acai.regularize(encoder, decoder, image_shape=(1, 32, 32), lam=args.lam, gamma=args.gamma,
                            critic_depth=args.critic_depth)
    ae_optimizer = torch.optim.Adam(model.autoencoder_parameters(), lr=args.lr)
    critic_optimizer = torch.optim.Adam(model.critic.parameters(), lr=args.lr)
    noise = torch.Generator().manual_seed(args.seed + 1)  # every α of training comes from here
    source = lines.LinesSource()

    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        x, _ = source.train_batch(seed=args.seed, step=step, batch_size=args.batch)  # (B, 1, 32, 32)
        out = model(x, torch.rand(len(x), generator=noise))  # α ~ U[0, 1]
        reconstruction_loss = F.mse_loss(out.reconstruction, x)
        model.backward(reconstruction_loss + out.ae_term, out.critic_loss)  # each loss to its own networks
        ae_optimizer.step()
        critic_optimizer.step()
        if step % 100 == 0 or step == args.steps:
            print(f"step {step:4d}: reconstruction {reconstruction_loss.item():.4f}  λ-term {out.ae_term.item():.5f}  "
                  f"critic {out.critic_loss.item():.4f}  ({step * args.batch / (time.perf_counter() - start):.0f} "
                  f"samples/s)", flush=True)

    model.eval()
    pairs = source.evaluation_lines(seed=args.seed, evaluation=0, count=512)  # 256 pairs of fresh lines
    mean_distance, smoothness = lines.evaluate(lines_interpolations(model, pairs))
    print(f"lines metrics after {args.steps * args.batch:,} samples (λ = {args.lam}): "
          f"Mean Distance {mean_distance * 1e3:.2f}e-3, Smoothness {smoothness:.3f} (lower is better; "
          f"NaN: every interpolation decodes to one image)")


if __name__ == "__main__":
    main()
