"""Cost estimates from a FLOP counter, not from rules of thumb.

``train_flops_per_image`` runs one forward and backward pass of a model under
``torch.utils.flop_counter.FlopCounterMode`` (on the meta device, so nothing is computed) and returns the
FLOPs per training image (a multiply-add counts as two). ``estimate`` turns a number of training images into
an expected time on a device, at an assumed share of that device's dense peak.

    python -m harness.estimate        # FLOPs per training image of every model the suite trains
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

from harness.claims import FAMILY

# Dense peak FLOP/s used for estimates, by the device name's key word; bf16 on GPUs, fp32 on the CPU.
PEAK = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "CPU": 25e9}
UTILISATION = 0.3  # a realistic share of the peak for small convolutions at batch 64-100


def _conv_backward_flop(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
                        _output_padding, _groups, output_mask, **_) -> int:
    """A convolution's backward: the input's and the weight's gradients each cost one forward pass of it.
    PyTorch's own formula loses the groups division for the weight's gradient, so a depthwise convolution's
    backward counts channels-fold too much (EfficientNet-Lite0 at 64 px: 2.56 GFLOP of backward against 0.06
    of forward per image; pytorch/pytorch#183405)."""
    forward = conv_flop_count(list(x_shape), list(w_shape), list(grad_out_shape), transposed)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def train_flops_per_image(model: torch.nn.Module, input_shape: tuple[int, ...], n_out: int | None = None,
                          batch: int = 2) -> float:
    """FLOPs of one training step (forward + backward) per image, counted on the meta device."""
    model = model.to("meta")
    x = torch.empty((batch, *input_shape), device="meta")
    with FlopCounterMode(display=False, custom_mapping={torch.ops.aten.convolution_backward: _conv_backward_flop}
                         ) as counter:
        out = model(x)
        target = torch.zeros(batch, dtype=torch.long, device="meta")
        F.cross_entropy(out.float(), target).backward()
    return counter.get_total_flops() / batch


def peak_of(device_name: str) -> float:
    for key, flops in PEAK.items():
        if key in device_name:
            return flops
    return PEAK["CPU"]


def estimate(flops_per_image: float, images: float, device_name: str) -> str:
    total = flops_per_image * images
    seconds = total / (peak_of(device_name) * UTILISATION)
    if seconds < 7200:
        when = f"{seconds / 60:.1f} min"
    elif seconds < 172800:
        when = f"{seconds / 3600:.1f} h"
    else:
        when = f"{seconds / 86400:.0f} days"
    return f"{total / 1e15:.2f} PFLOP, about {when} on {device_name} at {UTILISATION:.0%} of its dense peak"


def model_table() -> list[tuple[str, float]]:
    """(model, GFLOP per training image) for the networks the suite trains at the full profile."""
    from fixtures.fastai import create_cnn
    from fixtures.models import make_convnet4, make_modified_vgg

    return [
        ("part 6 ConvNet, MNIST 28x28", train_flops_per_image(make_convnet4(width=1.0), (1, 28, 28)) / 1e9),
        ("modified VGG, MNIST padded to 32x32",
         train_flops_per_image(make_modified_vgg(in_channels=1), (1, 32, 32)) / 1e9),
        ("modified VGG, CIFAR-10 32x32", train_flops_per_image(make_modified_vgg(in_channels=3), (3, 32, 32)) / 1e9),
        ("ResNet-34 + fastai head, 224x224 (unfrozen)",
         train_flops_per_image(create_cnn("resnet34", 5), (3, 224, 224)) / 1e9),
    ]


def family_estimates(device_name: str, families=None) -> list[str]:
    """One line per family: FLOPs of its full profile and the expected time on ``device_name``."""
    gflop = {}
    for name, g in model_table():
        for key in ("part 6 ConvNet", "modified VGG, MNIST", "modified VGG, CIFAR-10", "ResNet-34"):
            if name.startswith(key):
                gflop[key] = g
    out = []
    for fam, family in FAMILY.items():  # each family's full-profile plan lives in its Family record
        if not family.full_plan or (families is not None and fam not in families):
            continue
        model, images, how = family.full_plan
        out.append(f"{fam}: {estimate(gflop[model] * 1e9, images, device_name)} ({how})")
    return out


def main() -> int:
    for name, gflop in model_table():
        print(f"{gflop:8.2f} GFLOP per training image  {name}")
    import torch

    from harness.device import device_name

    dev = device_name(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    print(f"\nthe full profile per family, on {dev}:")
    for line in family_estimates(dev):
        print("  " + line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
