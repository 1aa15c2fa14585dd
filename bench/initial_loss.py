"""Why the first epoch's training loss is above ln 10 on both sides of bench/compare_train_quality.py:
timm's goog init (and mixnas's, evaluator/src/model/params.rs) draws the classifier from
U(+-1/sqrt(classes)), a range sized for 1000 classes that is 10x wider for 10, so the untrained
network's logits have a std of 3-5 and its loss is far above chance. Prints, for 3 init seeds, the
initial loss of the stride-adapted mixnet_s on 256 CIFAR-10 training images, and the same with the
classifier range of 1000 classes.

  VENV/bin/python bench/initial_loss.py --data target/testdata/cifar10-jpg
"""
import argparse, os, sys
import torch, timm, torch.nn.functional as F
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_train_cifar import load, channel_stats, to_input, proxy_adapt
p = argparse.ArgumentParser()
p.add_argument('--data', required=True)
a = p.parse_args()
torch.set_num_threads(1)
d = load(a.data, 100, 0)
mean, std = channel_stats(d['train'][0])
x = to_input(d['train'][0][:256], mean, std); y = torch.from_numpy(d['train'][1][:256])
for seed in range(3):
    torch.manual_seed(seed)
    m = timm.create_model('mixnet_s', num_classes=10, drop_rate=0.2); proxy_adapt(m); m.train()
    with torch.no_grad():
        logits = m(x)
        l10 = F.cross_entropy(logits, y, label_smoothing=0.1).item()
        r = 1 / 1000 ** 0.5
        m.classifier.weight.uniform_(-r, r)
        l1000 = F.cross_entropy(m(x), y, label_smoothing=0.1).item()
    print(f'seed {seed}: initial logit std {logits.std().item():.2f}, loss {l10:.3f} (ln 10 = 2.303); with the classifier range of 1000 classes: {l1000:.3f}')
