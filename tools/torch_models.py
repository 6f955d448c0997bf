"""torch_models.py - the PyTorch reference modules fsbench mirrors (tools only, never the product).

ConvNet-4 and ResNet-12 exactly as FEAT (Ye et al.) defines them, with FEAT's state_dict
names under an `encoder.` prefix plus an optional `fc` head (see tests/fixtures/README.md and
docs/formats.md):
  ConvNet4(widths=(64,)*4): encoder.<b>.{0: Conv2d 3x3 pad 1 + bias, 1: BatchNorm2d}, ReLU,
      MaxPool2d(2); embedding = global max pool of the last map.
  ResNet12(widths=(64,160,320,640)): encoder.layer<l>.0 = BasicBlock (conv1/bn1/conv2/bn2/
      conv3/bn3, 1x1 downsample conv + BN, LeakyReLU(0.1), MaxPool2d(2)); embedding = global
      average pool. Dropout / DropBlock are not modelled (the fixtures use rate 0).
  FeatAttention(d): FEAT's slf_attn, MultiHeadAttention(1, d, d, d, dropout) with FEAT's
      parameter names (w_qs/w_ks/w_vs.weight, layer_norm.*, fc.*) and initialisation;
      one head only, so FEAT's head split/merge permutes are left out (identities).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_block(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )


class ConvNet4(nn.Module):
    def __init__(self, widths=(64, 64, 64, 64), n_class=0, in_ch=3):
        super().__init__()
        chans = [in_ch] + list(widths)
        self.encoder = nn.Sequential(*[conv_block(chans[i], chans[i + 1]) for i in range(4)])
        self.embed_dim = widths[-1]
        self.fc = nn.Linear(self.embed_dim, n_class) if n_class else None

    def embed(self, x):
        # FEAT: MaxPool2d(5) on the 5x5 map at 84x84 = a global max pool
        return F.adaptive_max_pool2d(self.encoder(x), 1).flatten(1)

    def forward(self, x):
        e = self.embed(x)
        return e, (self.fc(e) if self.fc is not None else None)


def conv3x3(cin, cout):
    return nn.Conv2d(cin, cout, 3, stride=1, padding=1, bias=False)


class BasicBlock(nn.Module):
    def __init__(self, cin, planes):
        super().__init__()
        self.conv1 = conv3x3(cin, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.LeakyReLU(0.1)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv3x3(planes, planes)
        self.bn3 = nn.BatchNorm2d(planes)
        self.maxpool = nn.MaxPool2d(2)
        self.downsample = nn.Sequential(
            nn.Conv2d(cin, planes, kernel_size=1, stride=1, bias=False), nn.BatchNorm2d(planes)
        )

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out = out + self.downsample(x)
        return self.maxpool(self.relu(out))


class ResNet12Encoder(nn.Module):
    def __init__(self, widths=(64, 160, 320, 640), in_ch=3):
        super().__init__()
        chans = [in_ch] + list(widths)
        for i in range(4):
            setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(chans[i], chans[i + 1])))
        for m in self.modules():  # FEAT's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="leaky_relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x):
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class ResNet12(nn.Module):
    def __init__(self, widths=(64, 160, 320, 640), n_class=0, in_ch=3):
        super().__init__()
        self.encoder = ResNet12Encoder(widths, in_ch)
        self.embed_dim = widths[-1]
        self.fc = nn.Linear(self.embed_dim, n_class) if n_class else None

    def embed(self, x):
        return self.encoder(x).mean(dim=(2, 3))  # global average pool (AvgPool(5) at 84x84)

    def forward(self, x):
        e = self.embed(x)
        return e, (self.fc(e) if self.fc is not None else None)


class FeatAttention(nn.Module):
    """Y = LayerNorm(dropout_p(fc(dropout_a(softmax(q k^T / sqrt(d))) v)) + X), q/k/v = bias-free
    projections of X (B, n, d). FEAT: attn_dropout 0.1 (ScaledDotProductAttention's default),
    dropout 0.5 (FEAT passes it; MultiHeadAttention's own default is 0.1)."""

    def __init__(self, d, attn_dropout=0.1, dropout=0.5):
        super().__init__()
        self.w_qs = nn.Linear(d, d, bias=False)
        self.w_ks = nn.Linear(d, d, bias=False)
        self.w_vs = nn.Linear(d, d, bias=False)
        std = (2.0 / (d + d)) ** 0.5  # FEAT: sqrt(2 / (d_model + d_k)), likewise d_v
        for lin in (self.w_qs, self.w_ks, self.w_vs):
            nn.init.normal_(lin.weight, mean=0.0, std=std)
        self.temperature = d ** 0.5
        self.attn_dropout = nn.Dropout(attn_dropout)
        self.layer_norm = nn.LayerNorm(d)
        self.fc = nn.Linear(d, d)  # with bias; the bias keeps nn.Linear's default init
        nn.init.xavier_normal_(self.fc.weight)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        q, k, v = self.w_qs(x), self.w_ks(x), self.w_vs(x)
        scores = torch.bmm(q, k.transpose(1, 2)) / self.temperature
        attn = self.attn_dropout(torch.softmax(scores, dim=2))
        y = self.dropout(self.fc(torch.bmm(attn, v)))
        return self.layer_norm(y + x)


def build(arch, widths, n_class):
    """A model for arch 'conv4' | 'res12'."""
    if arch == "conv4":
        return ConvNet4(tuple(widths), n_class)
    if arch == "res12":
        return ResNet12(tuple(widths), n_class)
    raise ValueError(f"unknown arch {arch!r}")


def bn_names(model):
    """State-dict prefixes of every BatchNorm2d, in module order."""
    return [n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]


def randomise_bn(model, gen):
    """Non-trivial BN affine parameters and running statistics (so eval mode tests them)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                m.bias.copy_(torch.rand(c, generator=gen) * 0.6 - 0.3)
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.2)
                m.running_var.copy_(torch.rand(c, generator=gen) * 1.5 + 0.5)
