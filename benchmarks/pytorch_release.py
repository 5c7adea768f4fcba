"""The authors' algorithm in PyTorch, as the benchmarks' same-machine anchor.

The network and the step are the release's (``research/investigations/gradcon_pytorch_recipe.py``
writes the same recipe out for training runs): the paper's CAE with PyTorch's default
initialisation, Adam 1e-3, one training step = the MSE, the decoder-kernel gradients with
``create_graph=True``, minus their mean cosine to the running averages times alpha, backward
through both, the running averages updated with the total-loss gradients. Scoring is the
release's: one image at a time, the gradient of its own MSE. ``torch`` (``pip install
torch==2.13.0``) is optional: without it the suite reports no anchor.
"""

import numpy as np

ALPHA, BETA = 0.03, 0.12


def available():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


class Release:
    """The paper's CAE in PyTorch with non-zero running averages, as after training."""

    def __init__(self, threads, seed=0):
        import torch
        import torch.nn as nn

        torch.set_num_threads(threads)
        torch.manual_seed(seed)
        self.torch = torch
        self.network = nn.Sequential(
            nn.Conv2d(1, 32, 4, 2, 2), nn.ReLU(), nn.Conv2d(32, 32, 4, 2, 2), nn.ReLU(),
            nn.Conv2d(32, 64, 4, 2, 2), nn.ReLU(), nn.Conv2d(64, 64, 4, 2, 2), nn.ReLU(),
            nn.ConvTranspose2d(64, 64, 4, 2, 2), nn.ReLU(), nn.ConvTranspose2d(64, 32, 4, 2, 1),
            nn.ReLU(), nn.ConvTranspose2d(32, 32, 4, 2, 2), nn.ReLU(),
            nn.ConvTranspose2d(32, 1, 4, 2, 1), nn.Sigmoid(),
        )
        self.kernels = [self.network[i].weight for i in (8, 10, 12, 14)]
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=1e-3)
        generator = torch.Generator().manual_seed(seed)
        self.reference = [torch.randn(k.shape, generator=generator) for k in self.kernels]
        self.steps = 100

    def _terms(self, batch, create_graph):
        functional = self.torch.nn.functional
        recon = functional.mse_loss(self.network(batch), batch)
        grads = self.torch.autograd.grad(recon, self.kernels, create_graph=create_graph)
        cosines = self.torch.stack([
            functional.cosine_similarity(g.reshape(1, -1), r.reshape(1, -1))[0]
            for g, r in zip(grads, self.reference)
        ])
        return recon, -cosines.mean()

    def train_step(self, batch):
        """One step of Eq. 6 on ``batch`` (torch NCHW float); returns the loss."""
        self.optimizer.zero_grad()
        recon, grad_loss = self._terms(batch, create_graph=True)
        loss = recon + ALPHA * grad_loss
        loss.backward()
        self.steps += 1
        with self.torch.no_grad():
            for reference, kernel in zip(self.reference, self.kernels):
                reference += (kernel.grad - reference) / self.steps
        self.optimizer.step()
        return float(loss.detach())

    def score_one(self, image):
        """The release's score of one image (torch 1CHW float): recon + beta * grad_loss."""
        recon, grad_loss = self._terms(image[None], create_graph=False)
        return float(recon + BETA * grad_loss)

    def tensor(self, images_nhwc):
        """numpy NHWC float32 -> torch NCHW."""
        return self.torch.from_numpy(np.ascontiguousarray(images_nhwc.transpose(0, 3, 1, 2)))
