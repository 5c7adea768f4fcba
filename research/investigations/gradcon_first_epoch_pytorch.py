"""Does GradCon (the release's recipe, written here in PyTorch from FACTS.md: PyTorch default init,
Adam 1e-3, batch 64, alpha 0.03, reference = running mean of the total-loss decoder-kernel
gradients, no gradient loss on the first step) leave a blank reconstruction after one epoch as
often in PyTorch as in Keras? torch is not a dependency: run it in an environment with torch.

    python -c "from gradcon_tf import data, protocols; import numpy as np; \
      s = data.load('mnist:../shared/datasets/mnist'); sp = protocols.one_class_split(s['train'], \
      s['test'], 4, seed=0); np.save('class4_train.npy', sp.train); np.save('class4_val.npy', sp.validation)"
    python research/investigations/gradcon_first_epoch_pytorch.py class4_train.npy class4_val.npy 0 1 2 ...

One line per seed: max of the validation reconstructions after one epoch (blank: < 0.5).
Output: gradcon_first_epoch_pytorch.txt.
"""
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(2)
train = torch.from_numpy(np.load(sys.argv[1]).astype("float32").transpose(0, 3, 1, 2) / 255.0)
val = torch.from_numpy(np.load(sys.argv[2]).astype("float32").transpose(0, 3, 1, 2) / 255.0)
ALPHA = 0.03


def network():
    encoder = nn.Sequential(
        nn.Conv2d(1, 32, 4, 2, 2), nn.ReLU(), nn.Conv2d(32, 32, 4, 2, 2), nn.ReLU(),
        nn.Conv2d(32, 64, 4, 2, 2), nn.ReLU(), nn.Conv2d(64, 64, 4, 2, 2), nn.ReLU())
    decoder = nn.Sequential(
        nn.ConvTranspose2d(64, 64, 4, 2, 2), nn.ReLU(), nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
        nn.ConvTranspose2d(32, 32, 4, 2, 2), nn.ReLU(), nn.ConvTranspose2d(32, 1, 4, 2, 1), nn.Sigmoid())
    return encoder, decoder


for seed in map(int, sys.argv[3:]):
    torch.manual_seed(seed)
    encoder, decoder = network()
    kernels = [decoder[i].weight for i in (0, 2, 4, 6)]
    optimizer = torch.optim.Adam(list(encoder.parameters()) + list(decoder.parameters()), lr=1e-3)
    reference, steps = [torch.zeros_like(k) for k in kernels], 0
    order = torch.randperm(len(train))
    for start in range(0, len(train), 64):
        batch = train[order[start:start + 64]]
        optimizer.zero_grad()
        recon = F.mse_loss(decoder(encoder(batch)), batch)
        loss = recon
        if steps > 0:
            grads = torch.autograd.grad(recon, kernels, create_graph=True)
            cosines = [F.cosine_similarity(g.reshape(1, -1), r.reshape(1, -1))[0] for g, r in zip(grads, reference)]
            loss = recon + ALPHA * -torch.stack(cosines).mean()
        loss.backward()
        steps += 1
        for r, k in zip(reference, kernels):
            r += (k.grad - r) / steps
        optimizer.step()
    with torch.no_grad():
        brightest = decoder(encoder(val)).max().item()
    print(f"torch seed {seed}: max validation reconstruction after one epoch {brightest:.3f}", flush=True)
