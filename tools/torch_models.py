"""torch_models.py - the PyTorch reference modules fsbench mirrors (tools only, never the product).

ConvNet-4 and ResNet-12 exactly as FEAT (Ye et al.) defines them, with FEAT's state_dict
names under an `encoder.` prefix plus an optional `fc` head (see tests/fixtures/README.md and
docs/formats.md):
  ConvNet4(widths=(64,)*4): encoder.<b>.{0: Conv2d 3x3 pad 1 + bias, 1: BatchNorm2d}, ReLU,
      MaxPool2d(2); embedding = global max pool of the last map, or with flatten=True the
      flattened last map (C*h*h, h = in_hw // 16: 1600-d at 84, as ProtoNet / CloserLook /
      SimpleShot / LibFewShot use it; the checkpoint meta `flatten` = 1, include/fsb/model.h).
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


def conv4_flat_dim(widths, in_hw):
    """Embedding size of the flattened ConvNet-4: C * h * h after four floor-halvings."""
    h = in_hw // 16
    return widths[-1] * h * h


class ConvNet4(nn.Module):
    def __init__(self, widths=(64, 64, 64, 64), n_class=0, in_ch=3, flatten=False, in_hw=84):
        super().__init__()
        chans = [in_ch] + list(widths)
        self.encoder = nn.Sequential(*[conv_block(chans[i], chans[i + 1]) for i in range(4)])
        self.flatten = bool(flatten)
        self.embed_dim = conv4_flat_dim(widths, in_hw) if flatten else widths[-1]
        self.fc = nn.Linear(self.embed_dim, n_class) if n_class else None

    def embed(self, x):
        if self.flatten:  # the map as it is, (C, H, W) order, like torch's x.view(n, -1)
            return self.encoder(x).flatten(1)
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


def build(arch, widths, n_class, flatten=False, in_hw=84):
    """A model for arch 'conv4' | 'res12' (flatten: ConvNet-4 only, see ConvNet4)."""
    if arch == "conv4":
        return ConvNet4(tuple(widths), n_class, flatten=flatten, in_hw=in_hw)
    if arch == "res12":
        if flatten:
            raise ValueError("flatten is a ConvNet-4 option (ResNet-12 average-pools)")
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


# ---- other libraries' backbones, as small reproductions -----------------------------------
#
# What tools/import_torch.py --selftest converts: each class below rebuilds one library's module
# structure (registration order = state_dict key order and names) and its forward, from that
# library's backbone definition, with the widths as a parameter so that the self-test stays
# small. `embed(x)` is the feature the library evaluates few-shot tasks on; `head_logits(x)` its
# classification head where it has one. Facts, per library:
#
#  CloserLook (wyharveychen/CloserLookFewShot, backbone.py): ConvBlock = conv 3x3 pad 1 with
#    bias, BN, ReLU, MaxPool2d(2), kept both as attributes C / BN / relu / pool and inside a
#    Sequential `trunk`, so every conv and BN tensor appears twice in the state_dict
#    (trunk.<b>.C.weight and trunk.<b>.trunk.0.weight). Conv4 = 4 blocks + Flatten: the
#    embedding is the flattened 64x5x5 map (final_feat_dim 1600). Methods keep the backbone as
#    `feature` (baseline: `classifier` = Linear(1600, n); baseline++: a cosine `distLinear`
#    with a weight-normalised `classifier.L`). Saved as {'epoch': e, 'state': state_dict}.
#    Its ResNet-10/18/34 start with a 7x7 stride-2 conv and have two 3x3 convs per block.
#  SimpleShot (mileyan/simple_shot, src/models/): conv4 = conv1..conv4, each Sequential(conv 3x3
#    pad 1 with bias, BN, ReLU, MaxPool2d(2)); embedding = the flattened map (1600-d); head
#    `logits` = Linear(1600, n) unless remove_linear. Trained under nn.DataParallel and saved as
#    {'epoch', 'arch', 'state_dict' ('module.' keys), 'best_prec1', 'optimizer'}. Its ResNets
#    are torchvision-style (3x3 stem conv, two convs per block, ReLU, strided convs).
#  RFS (WangYueFt/rfs, models/convnet.py, models/resnet.py): ConvNet = layer1..layer3
#    Sequential(conv 3x3 pad 1 with bias, BN, ReLU, MaxPool2d(2)), layer4 the same WITHOUT the
#    max pool, then AdaptiveAvgPool2d(1): a global average of the 10x10 map (at 84 px);
#    `classifier` = Linear(64, n). resnet12 = layer1..layer4 each Sequential(BasicBlock):
#    conv1/bn1/conv2/bn2/conv3/bn3 (3x3, no bias), LeakyReLU(0.1), 1x1 conv + BN `downsample`,
#    MaxPool2d(2) - FEAT's block - with avg_pool=True (create_model) a global average pool,
#    `classifier` = Linear(640, n); seresnet12 adds a squeeze-excitation `se` (two Linear
#    layers) inside each block. Saved as {'opt': argparse namespace, 'model': state_dict}.
#  LibFewShot (RL-VIG/LibFewShot, core/model/backbone/conv_four.py, resnet_12.py): Conv64F =
#    layer1..layer4 Sequential(conv 3x3 pad 1 with bias, BN, ReLU - or LeakyReLU(0.2) with
#    leaky_relu=True - [MaxPool2d(2) inside for layers 1-2]) with separate max pools after
#    layers 3 and 4 (maxpool_last2, last_pool; True by default), BN without running statistics
#    when use_running_statistics=False; is_flatten gives the 1600-d flattened map. resnet12 =
#    FEAT's block (LeakyReLU 0.1, 1x1 downsample, max pool), then AvgPool2d(5, stride 1): the
#    global average at 84 px. Methods keep the backbone as `emb_func` (Baseline: `classifier` =
#    Linear(feat_dim, n)). checkpoints/model_best.pth and emb_func_best.pth are bare state_dicts
#    (the whole model, the backbone alone), model_last.pth is {'epoch', 'model', 'optimizer',
#    'lr_scheduler'}; 'module.' parts are removed before saving.
#  easyfsl (sicara/easy-few-shot-learning, easyfsl/modules/): feat_resnet12 = FEAT's ResNet-12
#    (dropout removed; embedding = mean over the map); resnet12 is a torchvision-style ResNet
#    (3x3 stem conv + BN + ReLU, BasicBlocks of two 3x3 convs with layers [1, 1, 2, 1], strided
#    convs instead of max pools, global average pool, an `fc` always present). Few-shot
#    classifiers keep the backbone as `backbone`; saved with torch.save(model.state_dict()).


def _pool_embed(x, kind):
    if kind == "max":
        return F.adaptive_max_pool2d(x, 1).flatten(1)
    if kind == "avg":
        return F.adaptive_avg_pool2d(x, 1).flatten(1)
    return x.flatten(1)  # "flat"


class CloserLookConvBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.C = nn.Conv2d(cin, cout, 3, padding=1)
        self.BN = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.trunk = nn.Sequential(self.C, self.BN, self.relu, self.pool)  # the same modules

    def forward(self, x):
        return self.trunk(x)


class CloserLookConvNet(nn.Module):
    """CloserLook's ConvNet(depth): `trunk` of ConvBlocks (pooled in the first 4) + Flatten."""

    def __init__(self, width=64, depth=4):
        super().__init__()
        blocks = [CloserLookConvBlock(3 if i == 0 else width, width) for i in range(depth)]
        self.trunk = nn.Sequential(*blocks, nn.Flatten())

    def forward(self, x):
        return self.trunk(x)


class CloserLookDistLinear(nn.Module):
    """baseline++'s cosine classifier: a weight-normalised Linear `L` without bias."""

    def __init__(self, d, n):
        super().__init__()
        self.L = torch.nn.utils.weight_norm(nn.Linear(d, n, bias=False), name="weight", dim=0)
        self.scale = 2.0 if n <= 200 else 10.0

    def forward(self, x):
        return self.scale * self.L(x / (x.norm(dim=1, keepdim=True) + 1e-5))


class CloserLookModel(nn.Module):
    """A CloserLook method holding `feature` (+ `classifier` for baseline / baseline++)."""

    def __init__(self, width=8, n_class=0, head="linear", depth=4, in_hw=84):
        super().__init__()
        self.feature = CloserLookConvNet(width, depth)
        d = width * (in_hw // 16) ** 2
        self.classifier = None
        if n_class and head == "linear":
            self.classifier = nn.Linear(d, n_class)
        elif n_class and head == "dist":
            self.classifier = CloserLookDistLinear(d, n_class)

    def embed(self, x):
        return self.feature(x)

    def head_logits(self, x):
        return self.classifier(self.embed(x))


def _seq_block(cin, cout, act, pool, bias=True, running=True):
    layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=bias),
              nn.BatchNorm2d(cout, track_running_stats=running), act]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class SimpleShotConv4(nn.Module):
    """SimpleShot's conv4: conv1..conv4 blocks, flattened map, optional `logits` head."""

    def __init__(self, width=8, n_class=0, in_hw=84):
        super().__init__()
        for i in range(4):
            cin = 3 if i == 0 else width
            setattr(self, f"conv{i + 1}", _seq_block(cin, width, nn.ReLU(), True))
        if n_class:  # registered as `logits`, SimpleShot's name for its head
            self.add_module("logits", nn.Linear(width * (in_hw // 16) ** 2, n_class))

    def embed(self, x):
        return self.conv4(self.conv3(self.conv2(self.conv1(x)))).flatten(1)

    def head_logits(self, x):
        return self._modules["logits"](self.embed(x))


class RFSConvNet(nn.Module):
    """RFS's ConvNet: no max pool in layer4, then a global average pool; `classifier`."""

    def __init__(self, width=8, n_class=0):
        super().__init__()
        for i in range(4):
            cin = 3 if i == 0 else width
            setattr(self, f"layer{i + 1}", _seq_block(cin, width, nn.ReLU(), i < 3))
        self.classifier = nn.Linear(width, n_class) if n_class else None

    def embed(self, x):
        return _pool_embed(self.layer4(self.layer3(self.layer2(self.layer1(x)))), "avg")

    def head_logits(self, x):
        return self.classifier(self.embed(x))


class SqueezeExcite(nn.Module):
    def __init__(self, c, reduction=4):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(c, c // reduction), nn.ReLU(),
                                nn.Linear(c // reduction, c), nn.Sigmoid())

    def forward(self, x):
        return x * self.fc(x.mean(dim=(2, 3)))[:, :, None, None]


class Res12Block(nn.Module):
    """FEAT's / RFS's / LibFewShot's / easyfsl's ResNet-12 block, optionally with RFS's SE
    layer or another LeakyReLU slope; registration order conv1, bn1, conv2, bn2, conv3, bn3,
    downsample (then se), as in those libraries."""

    def __init__(self, cin, planes, se=False, slope=0.1):
        super().__init__()
        self.conv1 = conv3x3(cin, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.LeakyReLU(slope)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv3x3(planes, planes)
        self.bn3 = nn.BatchNorm2d(planes)
        self.maxpool = nn.MaxPool2d(2)
        self.downsample = nn.Sequential(nn.Conv2d(cin, planes, 1, bias=False),
                                        nn.BatchNorm2d(planes))
        self.se = SqueezeExcite(planes) if se else None

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.se is not None:
            out = self.se(out)
        return self.maxpool(self.relu(out + self.downsample(x)))


class Res12Layers(nn.Module):
    """layer1..layer4, each a Sequential of one Res12Block; `pool` is how the map becomes the
    embedding: 'avg' (RFS, easyfsl: adaptive / mean), 'avg5' (LibFewShot: AvgPool2d(5, 1),
    global only at 84 px) or 'flat' (RFS with avg_pool=False)."""

    def __init__(self, widths=(8, 12, 16, 20), se=False, pool="avg"):
        super().__init__()
        chans = [3] + list(widths)
        for i in range(4):
            setattr(self, f"layer{i + 1}", nn.Sequential(Res12Block(chans[i], chans[i + 1], se)))
        self.pool = pool

    def forward(self, x):
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        if self.pool == "avg5":
            return F.avg_pool2d(x, 5, stride=1).flatten(1)
        return _pool_embed(x, self.pool)


class RFSResNet12(nn.Module):
    """RFS's resnet12 / seresnet12 with its `classifier` (the layers at the top level)."""

    def __init__(self, widths=(8, 12, 16, 20), n_class=0, se=False, avg_pool=True, in_hw=84):
        super().__init__()
        chans = [3] + list(widths)
        for i in range(4):
            setattr(self, f"layer{i + 1}", nn.Sequential(Res12Block(chans[i], chans[i + 1], se)))
        self._pool = "avg" if avg_pool else "flat"
        d = widths[-1] if avg_pool else widths[-1] * (in_hw // 16) ** 2
        self.classifier = nn.Linear(d, n_class) if n_class else None

    def embed(self, x):
        return _pool_embed(self.layer4(self.layer3(self.layer2(self.layer1(x)))), self._pool)

    def head_logits(self, x):
        return self.classifier(self.embed(x))


class LibFewShotConv64F(nn.Module):
    """LibFewShot's Conv64F (defaults: pools after every layer, flattened output)."""

    def __init__(self, width=8, leaky_relu=False, negative_slope=0.2, running_stats=True):
        super().__init__()
        act = nn.LeakyReLU(negative_slope) if leaky_relu else nn.ReLU()
        for i in range(4):
            setattr(self, f"layer{i + 1}",
                    _seq_block(3 if i == 0 else width, width, act, i < 2, running=running_stats))
        self.layer3_maxpool = nn.MaxPool2d(2)
        self.layer4_pool = nn.MaxPool2d(2)

    def forward(self, x):
        x = self.layer3_maxpool(self.layer3(self.layer2(self.layer1(x))))
        return self.layer4_pool(self.layer4(x)).flatten(1)


class LibFewShotModel(nn.Module):
    """A LibFewShot classifier: `emb_func` (+ `classifier` = Linear for Baseline)."""

    def __init__(self, emb_func, feat_dim=0, n_class=0):
        super().__init__()
        self.emb_func = emb_func
        self.classifier = nn.Linear(feat_dim, n_class) if n_class else None

    def embed(self, x):
        return self.emb_func(x)

    def head_logits(self, x):
        return self.classifier(self.embed(x))


class EasyFSLClassifier(nn.Module):
    """An easyfsl few-shot classifier: only `backbone` holds tensors."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone

    def embed(self, x):
        return self.backbone(x)


class TorchvisionBasicBlock(nn.Module):
    """torchvision's BasicBlock (two 3x3 convs, ReLU, strided first conv, 1x1 downsample)."""

    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or cin != planes:
            self.downsample = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class EasyFSLResNet(nn.Module):
    """easyfsl's ResNet(BasicBlock, layers, planes) with the small 3x3 stem (big_kernel=False);
    resnet12 is layers [1, 1, 2, 1], planes 64, 160, 320, 640."""

    def __init__(self, layers=(1, 1, 2, 1), planes=(8, 12, 16, 20), stem=8, n_fc=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, stem, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU()
        cin = stem
        for i, (n, p) in enumerate(zip(layers, planes)):
            blocks = []
            for j in range(n):
                blocks.append(TorchvisionBasicBlock(cin, p, 2 if (i > 0 and j == 0) else 1))
                cin = p
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(cin, n_fc)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return _pool_embed(x, "avg")
