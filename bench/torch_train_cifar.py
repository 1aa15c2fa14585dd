#!/usr/bin/env python3
"""timm's mixnet_s trained in PyTorch exactly as `nas train --arch mixnet-s` trains it, the
yardstick for issue 3's CIFAR-10 check.

  ~/torchref/bin/python bench/torch_train_cifar.py --data target/testdata/cifar10-jpg \
      --subset 1000 --epochs 3 --batch 64 --threads 2 --seed 0 --json out.json

What is the same as `nas train` (evaluator/src/data, evaluator/src/train):
- Data: the same JPEG folders (train/<class>/, test/<class>/, classes = sorted folder names,
  files sorted by name); the same class-balanced subset (`--subset` per class), the same
  validation hold-out (10% of the smallest class) and the same epoch order and per-image crop and
  flip, all reproduced bit for bit with mixnas's SplitMix64 rules (evaluator/src/data/rng.rs,
  split.rs, loader.rs). The only data difference is the JPEG decoder (PIL/libjpeg-turbo here,
  the `image` crate there), which may differ by a grey level on some pixels.
- Normalisation: per-channel mean/std of the training split (after the hold-out), population std.
- Augmentation: zero-padded random crop (pad 32/8 = 4) and horizontal flip; the last partial
  training batch is dropped; validation and test are unaugmented and complete.
- Network: timm mixnet_s, 10 classes, dropout 0.2 before the classifier (the mixnas preset's
  value; timm's default is 0), BN momentum 0.1 / eps 1e-5, timm's own (goog) init. With the same
  proxy adaptation `nas train` applies at <= 64 px (evaluator/src/model/mod.rs,
  adapt_for_resolution): the stem and the first stride-2 block keep stride 1, so a 32x32 image
  ends at 4x4 and both sides train the same network (parameter counts are unchanged; the
  script checks the 4x4 map and prints the count).
- Optimiser: SGD, momentum 0.9, Nesterov, L2 weight decay 5e-4 on tensors of rank >= 2 only
  (not on BN parameters or biases), label smoothing 0.1.
- Schedule: PyTorch OneCycleLR per step (max lr 0.1, pct_start 0.3, div 25, final div 1e4,
  cosine), with momentum held at 0.9 (cycle_momentum=False), as mixnas's `one-cycle` does.
- Threads: torch.set_num_threads(--threads); batches are built in the main thread.

What differs: the weight-init and dropout random streams (each framework draws its own).

Prints one JSON line per epoch and a final one with the test accuracy; --json also writes it.
"""
import argparse
import json
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

MASK = (1 << 64) - 1
VALIDATION_SALT = 0x7661_6C69_6461_7465
AUGMENT_SALT = 0x6175_676D_656E_7421


class SplitMix64:
    """mixnas's data RNG (evaluator/src/data/rng.rs), bit for bit."""

    def __init__(self, seed):
        self.state = seed & MASK

    def next_u64(self):
        self.state = (self.state + 0x9E37_79B9_7F4A_7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58_476D_1CE4_E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D0_49BB_1331_11EB) & MASK
        return z ^ (z >> 31)

    def below(self, n):
        return (self.next_u64() * n) >> 64

    def shuffle(self, items):
        for i in range(len(items) - 1, 0, -1):
            j = self.below(i + 1)
            items[i], items[j] = items[j], items[i]


def derive(seed, tag):
    return SplitMix64(seed ^ ((tag * 0xD1B5_4A32_D192_ED03) & MASK)).next_u64()


def select_per_class(labels, num_classes, n, seed):
    """Up to n indices per class, ascending (evaluator/src/data/split.rs)."""
    by_class = [[] for _ in range(num_classes)]
    for i, label in enumerate(labels):
        by_class[label].append(i)
    picked = []
    for c, indices in enumerate(by_class):
        SplitMix64(derive(seed, c)).shuffle(indices)
        picked.extend(indices[:n])
    return sorted(picked)


def list_split(split_dir, classes):
    files, labels = [], []
    for label, name in enumerate(classes):
        d = os.path.join(split_dir, name)
        found = sorted(f for f in os.listdir(d) if f.lower().endswith(('.jpg', '.jpeg', '.png')))
        files += [os.path.join(d, f) for f in found]
        labels += [label] * len(found)
    return files, labels


def decode(files):
    """uint8 [N, 3, H, W]."""
    return np.stack([np.asarray(Image.open(f).convert('RGB')).transpose(2, 0, 1) for f in files])


def load(root, per_class, seed):
    classes = sorted(d for d in os.listdir(os.path.join(root, 'train')) if not d.startswith('.'))
    files, labels = list_split(os.path.join(root, 'train'), classes)
    if per_class is not None:
        keep = select_per_class(labels, len(classes), per_class, seed)
        files, labels = [files[i] for i in keep], [labels[i] for i in keep]
    val_per_class = max(min(np.bincount(labels, minlength=len(classes))) // 10, 1)
    val = set(select_per_class(labels, len(classes), val_per_class, seed ^ VALIDATION_SALT))
    train_idx = [i for i in range(len(files)) if i not in val]
    val_idx = sorted(val)
    pixels = decode(files)
    labels = np.array(labels, dtype=np.int64)
    test_files, test_labels = list_split(os.path.join(root, 'test'), classes)
    return dict(
        classes=classes,
        train=(pixels[train_idx], labels[train_idx]),
        val=(pixels[val_idx], labels[val_idx]),
        test=(decode(test_files), np.array(test_labels, dtype=np.int64)),
    )


def channel_stats(x):
    """Per-channel mean and population std in 0..1, as Normalize::from_dataset."""
    x = x.astype(np.float64) / 255.0
    mean = x.mean(axis=(0, 2, 3))
    std = np.maximum(np.sqrt(np.maximum((x * x).mean(axis=(0, 2, 3)) - mean * mean, 0.0)), 1 / 255)
    return mean.astype(np.float32), std.astype(np.float32)


def augmented_batch(images, positions, aug_seed, pad):
    """Zero-padded crop then flip per image, drawn as write_sample does (transform.rs)."""
    n, c, h, w = images.shape
    padded = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=np.uint8)
    padded[:, :, pad:pad + h, pad:pad + w] = images
    out = np.empty_like(images)
    for k, pos in enumerate(positions):
        rng = SplitMix64(derive(aug_seed, pos))
        dy, dx = rng.below(2 * pad + 1), rng.below(2 * pad + 1)
        crop = padded[k, :, dy:dy + h, dx:dx + w]
        out[k] = crop[:, :, ::-1] if rng.below(2) == 1 else crop
    return out


def to_input(images, mean, std):
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)
    return x.sub_(torch.from_numpy(mean)[:, None, None]).div_(torch.from_numpy(std)[:, None, None])


def proxy_adapt(model):
    """Stem and first stride-2 block keep stride 1 (mixnas adapt_for_resolution). Symmetric
    PyTorch padding k // 2 is the same at stride 1 and 2 for odd kernels, so only the stride moves."""
    model.conv_stem.stride = (1, 1)
    first = next(b for stage in model.blocks for b in stage if stride_of(b) == 2)
    for m in first.modules():
        if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2):
            assert m.padding == (m.kernel_size[0] // 2,) * 2, 'expected symmetric static padding'
            m.stride = (1, 1)


def stride_of(block):
    return max((m.stride[0] for m in block.modules() if isinstance(m, torch.nn.Conv2d)), default=1)


def accuracy(model, data, mean, std, batch=256):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(data[1]), batch):
            logits = model(to_input(data[0][i:i + batch], mean, std))
            correct += (logits.argmax(1).numpy() == data[1][i:i + batch]).sum()
    return correct / len(data[1])


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data', required=True)
    p.add_argument('--subset', type=int, default=1000)
    p.add_argument('--epochs', type=int, default=3)
    p.add_argument('--batch', type=int, default=64)
    p.add_argument('--lr', type=float, default=0.1)
    p.add_argument('--weight-decay', type=float, default=5e-4)
    p.add_argument('--label-smoothing', type=float, default=0.1)
    p.add_argument('--dropout', type=float, default=0.2)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--json')
    a = p.parse_args()

    import timm

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    t0 = time.time()
    d = load(a.data, a.subset, a.seed)
    mean, std = channel_stats(d['train'][0])
    x_train, y_train = d['train']
    print(json.dumps({'loaded_s': round(time.time() - t0, 1), 'train': len(y_train), 'val': len(d['val'][1]),
                      'test': len(d['test'][1]), 'mean': mean.tolist(), 'std': std.tolist()}), flush=True)

    model = timm.create_model('mixnet_s', num_classes=len(d['classes']), drop_rate=a.dropout)
    proxy_adapt(model)
    with torch.no_grad():
        fmap = model.forward_features(torch.zeros(1, 3, 32, 32)).shape[-1]
    assert fmap == 4, f'proxy adaptation should end at 4x4, got {fmap}x{fmap}'
    params = sum(p.numel() for p in model.parameters())

    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.SGD([{'params': decay, 'weight_decay': a.weight_decay},
                           {'params': no_decay, 'weight_decay': 0.0}], lr=a.lr, momentum=0.9, nesterov=True)
    steps = len(y_train) // a.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=a.epochs * steps, pct_start=0.3,
                                                anneal_strategy='cos', div_factor=25.0, final_div_factor=1e4,
                                                cycle_momentum=False)
    pad = min(x_train.shape[2:]) // 8
    report = {'model': 'timm mixnet_s (proxy-adapted)', 'params': params, 'torch': torch.__version__,
              'timm': timm.__version__, 'threads': a.threads, 'epochs': []}
    for epoch in range(a.epochs):
        model.train()
        order = list(range(len(y_train)))
        SplitMix64(derive(a.seed, epoch)).shuffle(order)
        aug_seed = derive(a.seed ^ AUGMENT_SALT, epoch)
        loss_sum = correct = seen = 0
        start = time.time()
        for s in range(steps):
            idx = order[s * a.batch:(s + 1) * a.batch]
            positions = range(s * a.batch, (s + 1) * a.batch)
            x = to_input(augmented_batch(x_train[idx], positions, aug_seed, pad), mean, std)
            y = torch.from_numpy(y_train[idx])
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=a.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(idx)
        seconds = time.time() - start
        e = {'epoch': epoch + 1, 'train_loss': loss_sum / seen, 'train_accuracy': correct / seen,
             'val_accuracy': float(accuracy(model, d['val'], mean, std)), 'images_per_s': seen / seconds,
             'seconds': seconds}
        report['epochs'].append(e)
        print(json.dumps(e), flush=True)
    report['test_accuracy'] = float(accuracy(model, d['test'], mean, std))
    report['wall_seconds'] = sum(e['seconds'] for e in report['epochs'])
    print(json.dumps({k: report[k] for k in ('test_accuracy', 'wall_seconds', 'params')}), flush=True)
    if a.json:
        tmp = a.json + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(report, f, indent=1)
        os.replace(tmp, a.json)


if __name__ == '__main__':
    main()
