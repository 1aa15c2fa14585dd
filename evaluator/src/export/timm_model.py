"""A network exported by `nas export --timm`, built by timm's own block-string decoder and
EfficientNet class from `arch_def.json` beside this file; with `model.safetensors` there (a
checkpoint was exported), its weights in timm's parameter names are loaded.

    from model import build
    net = build()                      # torch.nn.Module in eval mode
    net = build(drop_path_rate=0.1)    # any EfficientNet(...) argument overridden, e.g. to train
    register('found')                  # timm.create_model('found'), train.py --model found

`python model.py` prints the parameter count. Needs torch, timm and (for weights) safetensors.
"""
import json
from functools import partial
from pathlib import Path

from torch import nn
from timm.layers import get_act_layer
from timm.models._efficientnet_builder import decode_arch_def
from timm.models.efficientnet import EfficientNet

HERE = Path(__file__).resolve().parent
CONFIG = json.loads((HERE / 'arch_def.json').read_text())
WEIGHTS = HERE / 'model.safetensors'


def build(weights=True, **overrides):
    """The network in eval mode; `weights=False` keeps timm's initialisation."""
    c = CONFIG
    kwargs = dict(
        block_args=decode_arch_def(c['arch_def']),
        num_classes=c['num_classes'],
        num_features=c['num_features'],
        in_chans=c['in_chans'],
        stem_size=c['stem_size'],
        stem_kernel_size=c['stem_kernel_size'],
        fix_stem=True,
        output_stride=c['output_stride'],
        pad_type=c['pad_type'],
        act_layer=get_act_layer(c['act_layer']),
        norm_layer=partial(nn.BatchNorm2d, eps=c['bn_eps'], momentum=c['bn_momentum']),
        # The widths in arch_def are the built ones: no rounding to multiples of 8.
        round_chs_fn=lambda chs: chs,
        drop_rate=c['drop_rate'],
        drop_path_rate=c['drop_path_rate'],
    )
    kwargs.update(overrides)
    net = EfficientNet(**kwargs)
    if c['stem_stride'] != 2:
        # EfficientNet builds its stem at stride 2; the padding it chose is right at stride 1 too.
        net.conv_stem.stride = (c['stem_stride'], c['stem_stride'])
    if weights and WEIGHTS.exists():
        load_weights(net, WEIGHTS)
    return net.eval()


def load_weights(net, path):
    """Loads a state dict in timm's names. BN's `num_batches_tracked` may be absent; a
    classifier of another class count (`build(num_classes=N)`) keeps timm's initialisation."""
    from safetensors.torch import load_file

    state = load_file(str(path))
    own = net.state_dict()
    resized = [k for k in ('classifier.weight', 'classifier.bias') if k in state and state[k].shape != own[k].shape]
    for k in resized:
        del state[k]
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith('num_batches_tracked') and k not in resized]
    if missing or unexpected:
        raise RuntimeError(f'{path}: missing {missing[:3]}, unexpected {unexpected[:3]}')


def data_config():
    """timm's data settings for this network: input size and, for a checkpoint, normalisation."""
    c = CONFIG
    cfg = {'input_size': tuple(c.get('input_size') or (c['in_chans'], 224, 224)), 'num_classes': c['num_classes']}
    if c.get('mean'):
        cfg.update(mean=tuple(c['mean']), std=tuple(c['std']))
    return cfg


def register(name='mixnas_export'):
    """Registers the network as a timm model, so that `timm.create_model(name)` and timm's
    train.py (`--model name`) build it; `pretrained=True` (`--pretrained`) loads the exported
    weights. Returns the name."""
    from timm.models import register_model

    def entrypoint(pretrained=False, **kwargs):
        for key in ('pretrained_cfg', 'pretrained_cfg_overlay', 'cache_dir'):
            kwargs.pop(key, None)
        bn = {k: kwargs.pop(f'bn_{k}') for k in ('eps', 'momentum') if f'bn_{k}' in kwargs}
        if bn:
            bn = {'eps': CONFIG['bn_eps'], 'momentum': CONFIG['bn_momentum'], **bn}
            kwargs['norm_layer'] = partial(nn.BatchNorm2d, **bn)
        net = build(weights=pretrained, **kwargs)
        net.pretrained_cfg = {**data_config(), 'num_classes': net.num_classes}
        return net

    entrypoint.__name__ = name
    entrypoint.__module__ = __name__
    register_model(entrypoint)
    return name


if __name__ == '__main__':
    net = build()
    print(f"{CONFIG.get('name') or 'network'}: {sum(p.numel() for p in net.parameters())} parameters")
