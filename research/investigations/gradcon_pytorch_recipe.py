"""The release's GradCon recipe written in PyTorch from FACTS.md (PyTorch default init and Adam
1e-3, batch 64, alpha 0.03, beta 0.12, running mean of the total-loss decoder-kernel gradients,
no gradient loss on the first step, best validation loss J over the epochs), trained and scored
on a split saved from gradcon_tf's one-class protocol. torch is not a dependency.

    python -c "from gradcon_tf import data, protocols; import numpy as np; \
      s = data.load('mnist:../shared/datasets/mnist'); sp = protocols.one_class_split(s['train'], \
      s['test'], 2, seed=0); np.savez('split_c2_s0.npz', train=sp.train, val=sp.validation, \
      test=sp.test, anomaly=np.asarray(sp.test_is_anomaly))"
    python research/investigations/gradcon_pytorch_recipe.py split_c2_s0.npz EPOCHS TORCH_SEED...

Prints the test AUROC of the GradCon score, recon alone and grad alone per torch seed.
Output: gradcon_pytorch_recipe.txt.
"""
import copy
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)
split = np.load(sys.argv[1])
images = {k: torch.from_numpy(split[k].astype("float32").transpose(0, 3, 1, 2) / 255.0)
          for k in ("train", "val", "test")}
anomaly = split["anomaly"]
EPOCHS, ALPHA, BETA = int(sys.argv[2]), 0.03, 0.12


def roc_auc_score(positive, score):
    """Mann-Whitney AUROC with average ranks for ties (no scikit-learn in the torch environment)."""
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score))
    sorted_scores = np.asarray(score)[order]
    start = 0
    while start < len(score):
        end = start
        while end + 1 < len(score) and sorted_scores[end + 1] == sorted_scores[start]:
            end += 1
        ranks[order[start:end + 1]] = (start + end) / 2 + 1
        start = end + 1
    positive = np.asarray(positive, bool)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return (ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def network():
    return nn.Sequential(
        nn.Conv2d(1, 32, 4, 2, 2), nn.ReLU(), nn.Conv2d(32, 32, 4, 2, 2), nn.ReLU(),
        nn.Conv2d(32, 64, 4, 2, 2), nn.ReLU(), nn.Conv2d(64, 64, 4, 2, 2), nn.ReLU(),
        nn.ConvTranspose2d(64, 64, 4, 2, 2), nn.ReLU(), nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
        nn.ConvTranspose2d(32, 32, 4, 2, 2), nn.ReLU(), nn.ConvTranspose2d(32, 1, 4, 2, 1), nn.Sigmoid())


def loss_terms(model, kernels, reference, batch, create_graph):
    recon = F.mse_loss(model(batch), batch)
    grads = torch.autograd.grad(recon, kernels, create_graph=create_graph)
    cosines = torch.stack([F.cosine_similarity(g.reshape(1, -1), r.reshape(1, -1))[0]
                           for g, r in zip(grads, reference)])
    return recon, -cosines.mean()


for seed in map(int, sys.argv[3:]):
    torch.manual_seed(seed)
    model = network()
    kernels = [model[i].weight for i in (8, 10, 12, 14)]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    reference, steps, best = [torch.zeros_like(k) for k in kernels], 0, (np.inf, None, None, 0)
    for epoch in range(EPOCHS):
        order = torch.randperm(len(images["train"]))
        for start in range(0, len(order), 64):
            batch = images["train"][order[start:start + 64]]
            optimizer.zero_grad()
            if steps == 0:
                loss = F.mse_loss(model(batch), batch)
            else:
                recon, grad_loss = loss_terms(model, kernels, reference, batch, True)
                loss = recon + ALPHA * grad_loss
            loss.backward()
            steps += 1
            for r, k in zip(reference, kernels):
                r += (k.grad - r) / steps
            optimizer.step()
        total, count = 0.0, 0
        for start in range(0, len(images["val"]), 64):
            batch = images["val"][start:start + 64]
            recon, grad_loss = loss_terms(model, kernels, reference, batch, False)
            total += float(recon + ALPHA * grad_loss) * len(batch)
            count += len(batch)
        if total / count < best[0]:
            best = (total / count, copy.deepcopy(model.state_dict()),
                    [r.clone() for r in reference], epoch + 1)
    model.load_state_dict(best[1])
    reference = best[2]
    recon_scores, grad_scores = [], []
    for image in images["test"]:
        recon, grad_loss = loss_terms(model, kernels, reference, image[None], False)
        recon_scores.append(float(recon))
        grad_scores.append(float(grad_loss))
    recon_scores, grad_scores = np.array(recon_scores), np.array(grad_scores)
    auroc = {name: roc_auc_score(anomaly, score) for name, score in
             (("gradcon", recon_scores + BETA * grad_scores), ("recon", recon_scores),
              ("grad", grad_scores))}
    print(f"{sys.argv[1]} epochs {EPOCHS} torch seed {seed} best epoch {best[3]}: "
          + ", ".join(f"{k} {v:.3f}" for k, v in auroc.items()), flush=True)
