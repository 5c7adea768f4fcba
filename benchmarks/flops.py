"""Analytic FLOPs of GradCon per image, from the layer shapes of a model (2 FLOPs per MAC).

Per layer (k = kernel side, Cin/Cout = channels):

* ``Conv2D`` forward: ``Hout * Wout * k * k * Cin * Cout`` MACs (every output position reads a
  k x k x Cin window for each of Cout filters). Encoder: 28 -> 15 -> 8 -> 5 -> 3.
* ``Conv2DTranspose`` forward ('valid', before the crop): ``Hin * Win * k * k * Cin * Cout`` MACs
  (every input position scatters a k x k x Cout patch). Decoder: 3 -> 4 -> 8 -> 14 -> 28.
* The gradient of a layer with respect to its kernel costs the same MACs as its forward pass (the
  same products, summed over positions instead of over taps), so does the gradient with respect to
  its input (a Conv2D for a transposed conv and vice versa).
* Cosine of a per-sample kernel gradient g (size P) with the reference r: ``<g, r>`` and ``|g|^2``,
  2 MACs per kernel element (``|r|^2`` is once per batch and not counted).

Not counted (about 0.1 MFLOP per image, under 1 %): bias adds, ReLU/sigmoid and their derivatives,
crops and pads, the MSE, and per step (not per image) the Adam update and the running averages.

Scored image (the fast path ``gradients.decoder_scores``): encoder + decoder forward, then for
every decoder layer its per-sample kernel gradient and cosine, and the input gradient of every
decoder layer but the first (the one next to the latent needs no input gradient).

Training image (``GradCon.train_step``, Eq. 6 with the second-order term):

* forward (encoder + decoder);
* inner backward B1: decoder kernel gradients (all layers) and input gradients (all but the first);
* second order: the outer tape differentiates B1; every op of B1 is bilinear in its two inputs
  (activation/upstream gradient, or upstream gradient/kernel) and both need a gradient: 2 x B1;
* outer backward through the forward pass: kernel gradients of all 8 layers, input gradients of
  all decoder layers (down to the latent) and of encoder layers 2..4 (the image needs none).
"""

import keras

from gradcon_tf import gradients


def _spatial(shape):
    return int(shape[1]) * int(shape[2])


def layer_macs(model):
    """One row per conv layer of the encoder and decoder: its shapes, formula and forward MACs."""
    rows = []
    for part, network in (("encoder", model.encoder), ("decoder", model.decoder)):
        for layer in network.layers:
            if not isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
                continue
            kh, kw = layer.kernel_size
            cin, cout = int(layer.input.shape[-1]), int(layer.output.shape[-1])
            if isinstance(layer, keras.layers.Conv2DTranspose):
                positions, where = _spatial(layer.input.shape), "Hin*Win"
            else:
                positions, where = _spatial(layer.output.shape), "Hout*Wout"
            macs = positions * kh * kw * cin * cout
            rows.append({
                "part": part,
                "layer": layer.name,
                "input": [int(d) for d in layer.input.shape[1:]],
                "output": [int(d) for d in layer.output.shape[1:]],
                "kernel_elements": kh * kw * cin * cout,
                "formula": f"{where}*k*k*Cin*Cout = {positions}*{kh}*{kw}*{cin}*{cout}",
                "forward_macs": macs,
            })
    return rows


def per_image(model):
    """FLOPs per scored and per training image, itemised, from the model's own layer shapes."""
    rows = layer_macs(model)
    encoder = [r for r in rows if r["part"] == "encoder"]
    decoder = [r for r in rows if r["part"] == "decoder"]
    if len(decoder) != len(gradients.constrained_kernels(model.decoder)):
        raise ValueError("the FLOP count assumes every decoder kernel is a conv layer's")
    forward_encoder = sum(r["forward_macs"] for r in encoder)
    forward_decoder = sum(r["forward_macs"] for r in decoder)
    kernel_grads_decoder = forward_decoder
    input_grads_decoder_but_first = sum(r["forward_macs"] for r in decoder[1:])
    cosine = sum(2 * r["kernel_elements"] for r in decoder)
    scored = {
        "encoder_forward": forward_encoder,
        "decoder_forward": forward_decoder,
        "decoder_input_gradients": input_grads_decoder_but_first,
        "decoder_per_sample_kernel_gradients": kernel_grads_decoder,
        "cosines": cosine,
    }
    inner_backward = kernel_grads_decoder + input_grads_decoder_but_first
    outer_forward_backward = (
        forward_encoder  # encoder kernel gradients
        + sum(r["forward_macs"] for r in encoder[1:])  # encoder input gradients, layers 2..4
        + forward_decoder  # decoder kernel gradients
        + forward_decoder  # decoder input gradients, down to the latent
    )
    training = {
        "forward": forward_encoder + forward_decoder,
        "inner_backward": inner_backward,
        "second_order": 2 * inner_backward,
        "outer_backward_through_forward": outer_forward_backward,
    }

    def flops(macs):
        return {k: 2 * v for k, v in macs.items()}

    return {
        "convention": "2 FLOPs per multiply-accumulate; elementwise ops not counted (see benchmarks/flops.py)",
        "layers": rows,
        "scored_image": {"items": flops(scored), "total": 2 * sum(scored.values())},
        "training_image": {"items": flops(training), "total": 2 * sum(training.values())},
    }
