"""The release's network in PyTorch (torch is not a dependency: `pip install torch` in a separate
environment). Plain autoencoder, Adam 1e-3, batch 64, PyTorch default initialisation, on the first
2,048 training images of MNIST class 3 (saved by output_bias_probe's split as class3.npy):

    python -c "from gradcon_tf import data, protocols; import numpy as np; \
      s = data.load('mnist:../shared/datasets/mnist'); \
      np.save('class3.npy', protocols.one_class_split(s['train'], s['test'], 3, seed=1).train[:2048])"
    python research/investigations/release_network_pytorch.py class3.npy
"""
import sys, numpy as np, torch, torch.nn as nn, torch.nn.functional as F
x = np.load(sys.argv[1]).astype("float32") / 255.0
x = torch.from_numpy(x.reshape(-1, 1, 28, 28))
def cae():
    down = nn.Sequential(nn.Conv2d(1, 32, 4, 2, 2), nn.ReLU(), nn.Conv2d(32, 32, 4, 2, 2), nn.ReLU(),
                         nn.Conv2d(32, 64, 4, 2, 2), nn.ReLU(), nn.Conv2d(64, 64, 4, 2, 2), nn.ReLU())
    up = nn.Sequential(nn.ConvTranspose2d(64, 64, 4, 2, 2), nn.ReLU(), nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
                       nn.ConvTranspose2d(32, 32, 4, 2, 2), nn.ReLU(), nn.ConvTranspose2d(32, 1, 4, 2, 1), nn.Sigmoid())
    return nn.Sequential(down, up)
for seed in range(3):
    torch.manual_seed(seed)
    model = cae(); opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for epoch in range(4):
        perm = torch.randperm(len(x)); tot = 0
        for i in range(0, len(x), 64):
            b = x[perm[i:i+64]]; opt.zero_grad(); loss = F.mse_loss(model(b), b); loss.backward(); opt.step(); tot += loss.item() * len(b)
        losses.append(round(tot / len(x), 4))
    print("torch", seed, losses, flush=True)
