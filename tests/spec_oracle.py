"""Obviously-correct implementations of docs/model.md steps 5-7, in float64.

Deliberately naive and independent of ``ops/``: a Python loop over every position for the
scan and three ``F.conv2d`` calls on replicate-padded maps for the fusion, written straight
from the equations. Every backend is tested against these functions.
"""
import torch
import torch.nn.functional as F


def scan_oracle(u, delta, A, B, delta_bias=None, delta_softplus=True):
    """h_t = exp(dt_t A) h_{t-1} + dt_t B_t u_t; returns (batch, D, N, L) float64."""
    u, delta, A, B = u.double(), delta.double(), A.double(), B.double()
    dt = delta + (delta_bias.double()[:, None] if delta_bias is not None else 0)
    if delta_softplus:
        dt = torch.where(dt <= 20, torch.log1p(torch.exp(dt)), dt)
    batch, dim, length = u.shape
    h = torch.zeros(batch, dim, A.shape[1], dtype=torch.float64, device=u.device)
    states = []
    for t in range(length):
        dt_t = dt[:, :, t, None]                                   # (batch, D, 1)
        h = torch.exp(dt_t * A) * h + dt_t * B[:, None, :, t] * u[:, :, t, None]
        states.append(h)
    return torch.stack(states, dim=-1)


def fusion_oracle(h, k1, k3, k5, alpha):
    """sum_k alpha_k dwconv3x3_dilation_k(replicate_pad_k(h)); (batch, D, H, W) float64."""
    h, alpha = h.double(), alpha.double()
    dim = h.shape[1]
    out = 0
    for a, k, d in zip(alpha, (k1, k3, k5), (1, 3, 5)):
        padded = F.pad(h, (d, d, d, d), mode='replicate')
        out = out + a * F.conv2d(padded, k.double(), dilation=d, groups=dim)
    return out


def sasf_oracle(u, delta, A, B, C, D, delta_bias, k1, k3, k5, alpha, hw, delta_softplus=True):
    """y = C * fusion(scan(u)) + D * u with N = 1; (batch, D, L) float64."""
    batch, dim, length = u.shape
    h = scan_oracle(u, delta, A, B, delta_bias, delta_softplus)[:, :, 0]
    fused = fusion_oracle(h.reshape(batch, dim, *hw), k1, k3, k5, alpha).reshape(batch, dim, -1)
    return fused * C.double() + u.double() * D.double()[:, None]


def _bn(x, sd, prefix):
    return F.batch_norm(x, sd[prefix + 'running_mean'], sd[prefix + 'running_var'],
                        sd[prefix + 'weight'], sd[prefix + 'bias'], False, 0.0, 1e-5)


def _conv(x, sd, prefix, stride=1, padding=0, groups=1, bias=False):
    return F.conv2d(x, sd[prefix + 'weight'], sd[prefix + 'bias'] if bias else None,
                    stride, padding, 1, groups)


def _ln(x, sd, prefix):
    return F.layer_norm(x, x.shape[-1:], sd[prefix + 'weight'], sd[prefix + 'bias'], 1e-5)


def _mixer(x, sd, p):
    """docs/model.md steps 1-8 on channels-last x (batch, H, W, C), straight from the state dict."""
    batch, height, width, _ = x.shape
    xz = x @ sd[p + 'in_proj.weight'].T
    x, z = xz.chunk(2, dim=-1)
    dim = x.shape[-1]
    x = F.silu(_conv(x.permute(0, 3, 1, 2), sd, p + 'conv2d.', padding=1, groups=dim, bias=True))
    u = x.reshape(batch, dim, -1)
    rank = sd[p + 'dt_projs_weight'].shape[1]
    x_dbl = torch.einsum('cd,bdl->bcl', sd[p + 'x_proj_weight'], u)
    dt_low, Bm, Cm = x_dbl[:, :rank], x_dbl[:, rank:rank + 1], x_dbl[:, rank + 1:]
    delta = torch.einsum('dr,brl->bdl', sd[p + 'dt_projs_weight'], dt_low)
    y = sasf_oracle(u, delta, -torch.exp(sd[p + 'A_logs']), Bm, Cm, sd[p + 'Ds'],
                    sd[p + 'dt_projs_bias'], sd[p + 'state_fusion.kernel_3'],
                    sd[p + 'state_fusion.kernel_3_1'], sd[p + 'state_fusion.kernel_3_2'],
                    sd[p + 'state_fusion.alpha'], (height, width))
    y = _ln(y.transpose(1, 2).reshape(batch, height, width, dim), sd, p + 'out_norm.')
    return (y * F.silu(z)) @ sd[p + 'out_proj.weight'].T


def _block(x, sd, p):
    dim = x.shape[-1]

    def cpe(t, name):
        return _conv(t.permute(0, 3, 1, 2), sd, p + name, padding=1, groups=dim,
                     bias=True).permute(0, 2, 3, 1)
    x = x + cpe(x, 'cpe1.')
    x = x + _mixer(_ln(x, sd, p + 'ln_1.'), sd, p + 'self_attention.')
    x = x + cpe(x, 'cpe2.')
    hidden = F.gelu(_ln(x, sd, p + 'ln_2.') @ sd[p + 'mlp.fc1.weight'].T + sd[p + 'mlp.fc1.bias'])
    return x + hidden @ sd[p + 'mlp.fc2.weight'].T + sd[p + 'mlp.fc2.bias']


def backbone_oracle(state_dict, images, depths, out_indices=(0, 1, 2, 3)):
    """The published dense backbone's forward (eval mode), in float64, from its state dict.

    Written from docs/model.md alone (stem, blocks, downsampling, output norms), so it checks the
    module structure as well as the math. Returns the channels-first outputs.
    """
    sd = {k: v.double() for k, v in state_dict.items() if not k.endswith('num_batches_tracked')}
    x = images.double()
    x = F.relu(_bn(_conv(x, sd, 'patch_embed.conv1.conv.', 2, 1), sd, 'patch_embed.conv1.norm.'))
    r = F.relu(_bn(_conv(x, sd, 'patch_embed.conv2.0.conv.', 1, 1), sd,
                   'patch_embed.conv2.0.norm.'))
    x = x + _bn(_conv(r, sd, 'patch_embed.conv2.1.conv.', 1, 1), sd, 'patch_embed.conv2.1.norm.')
    x = F.relu(_bn(_conv(x, sd, 'patch_embed.conv3.0.conv.', 2, 1), sd,
                   'patch_embed.conv3.0.norm.'))
    x = _bn(_conv(x, sd, 'patch_embed.conv3.1.conv.'), sd, 'patch_embed.conv3.1.norm.')
    x = x.permute(0, 2, 3, 1)
    outs = []
    for i, depth in enumerate(depths):
        for j in range(depth):
            x = _block(x, sd, f'layers.{i}.blocks.{j}.')
        if i in out_indices:
            outs.append(_ln(x, sd, f'outnorm{i}.').permute(0, 3, 1, 2))
        if i < len(depths) - 1:
            p = f'layers.{i}.downsample.conv.'
            t = F.relu(_conv(x.permute(0, 3, 1, 2), sd, p + '0.conv.', bias=True))
            t = F.relu(_conv(t, sd, p + '1.conv.', 2, 1, groups=t.shape[1], bias=True))
            x = _bn(_conv(t, sd, p + '2.conv.', bias=True), sd, p + '2.norm.').permute(0, 2, 3, 1)
    return outs
