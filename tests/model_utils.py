"""Helpers shared by the model tests."""
import torch


def randomize_(model: torch.nn.Module) -> torch.nn.Module:
    """Give every parameter and BN statistic a random value, in place.

    Ones-initialised fusion kernels and alpha would hide a swapped dilation, zero biases a
    missing bias, and identical tensors a tensor loaded into the wrong place.
    """
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                if name.endswith('running_var'):
                    tensor.uniform_(0.5, 1.5)
                else:
                    tensor.normal_(0, 0.3 if 'A_logs' not in name else 0.5)
    return model
