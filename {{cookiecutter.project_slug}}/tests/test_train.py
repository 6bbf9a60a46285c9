"""End-to-end runs of train.py on tiny data: files written, log contents, CLI, early stop, best checkpoint, NaN."""

import csv
import importlib.util
import json
import random
import re
import shutil
import subprocess
import sys

import pytest
import torch
from torch import nn
from torch.utils.data import Subset

import train
from conftest import (
    PROJECT,
    SMALL_MODEL,
    TEST_BATCH_SIZE,
{%- if cookiecutter.task == 'classification' or (cookiecutter.model == 'mlp' and cookiecutter.dataset == 'image_folder') %}
    TEST_DATA_CONFIG,
{%- endif %}
    epoch_lines,
    help_of,
    load,
    only_run,
    run,
    snapshot,
)
from dataset import {{ 'augment, ' if cookiecutter.model == 'cnn' or cookiecutter.dataset == 'image_folder' }}build_datasets{{ ', collate_fn' if cookiecutter.task == 'classification' }}
from model import build_model
from runfiles import METRIC_NAME, RunError
from utils import (
    OLDEST_TORCH,
{%- if cookiecutter.task == 'classification' %}
    ClassWeightedCrossEntropy,
{%- endif %}
    all_seed,
{%- if cookiecutter.task == 'classification' %}
    balanced_class_weights,
    class_weights_text,
    classes_of,
    load_model_state,
{%- endif %}
    model_memory_errors,
    optimizer_groups,
    parse_args,
    setup_device,
    slurm_tasks_warning,
    training_targets,
)
{%- if cookiecutter.model == 'mlp' and cookiecutter.dataset == 'image_folder' %}

# an lr at which a few epochs learn. Adam moves each weight by about lr a step, and the MLP's first layer sums
# every pixel of the flattened image: wider images need a smaller one (at 224x224 RGB, 3e-3 and 1e-4 diverge;
# 3,072 pixels is 32x32 RGB; the tests' images are at most 32x32, with up to 4 channels)
LEARNING_LR = 3e-3 * min(1, 3072 / (TEST_DATA_CONFIG['image_channels'] * TEST_DATA_CONFIG['image_size'] ** 2))
{%- else %}

LEARNING_LR = 3e-3  # an lr at which a few epochs learn
{%- endif %}


@pytest.mark.draws_curves
def test_a_run_writes_every_log_and_checkpoint(workdir, data_args):
    assert run(data_args + ['--n_epoch', 3]) == 0
    logs, ckpts = only_run(workdir)
    curves = {'curves.png'} if importlib.util.find_spec('matplotlib') else set()
    logged = {'train.log', 'val.log', 'note.log', 'metrics.csv', 'config.json'}
    assert {p.name for p in logs.iterdir()} == logged | curves
    assert {p.name for p in ckpts.iterdir()} == {'best_checkpoint.pt', 'latest_checkpoint.pt'}
    assert logs.name == ckpts.name  # one timestamp names both folders
    for name in ('train.log', 'val.log'):
        lines = epoch_lines(logs / name)
        assert [int(line.split()[1]) for line in lines] == [1, 2, 3]
        assert all(f' {METRIC_NAME} ' in line and ' lr ' in line for line in lines)
    note = (logs / 'note.log').read_text()
    assert str(train.build_model(load(ckpts / 'latest_checkpoint.pt')['config'])) in note
    assert 'Total params' in note  # the torchinfo summary
    assert re.search(r'^Total mult-adds: [1-9][\d,]*$', note, re.MULTILINE)  # not '(Units.MEGABYTES): 0.08'
    for key, value in load(ckpts / 'latest_checkpoint.pt')['config'].items():
        assert f'{key}: {value}' in note
    latest = load(ckpts / 'latest_checkpoint.pt')
    assert latest['epoch'] == 3 and latest['step'] > 0
    assert 'device' not in latest['config']


def test_the_loss_goes_down(workdir, data_args):
    assert run(data_args + ['--n_epoch', 4, '--lr', LEARNING_LR]) == 0
    logs, _ = only_run(workdir)
    # the training loss: with few features the synthetic classes overlap, and the valid loss of 32 samples
    # can rise while the model learns (num_features=1: valid 0.618 -> 0.658, train 0.656 -> 0.529)
    losses = [float(line.split()[5]) for line in epoch_lines(logs / 'train.log')]
    assert losses[-1] < losses[0]


{% if cookiecutter.model == 'cnn' or cookiecutter.dataset == 'image_folder' -%}
def test_random_flips_and_shifts_apply_to_each_training_batch_and_nothing_else(workdir, data_args, monkeypatch):
    calls = []

    def recording_augment(images, flip, shift):
        calls.append((images.shape[0], flip, shift))
        return augment(images, flip, shift)
    monkeypatch.setattr(train, 'augment', recording_augment)
    assert run(data_args + ['--n_epoch', 1]) == 0
    assert calls == []  # off by default: the batches as they are
    augmented = ['--random_flip', 'true', '--random_shift', 3, '--run_name', 'augmented']
    assert run(data_args + ['--n_epoch', 2, *augmented]) == 0
    n_train = load(workdir / 'checkpoints' / 'augmented' / 'latest_checkpoint.pt')['data']['train']
    batch_sizes = [min(TEST_BATCH_SIZE, n_train - start) for start in range(0, n_train, TEST_BATCH_SIZE)]
    assert calls == [(n, True, 3) for n in batch_sizes * 2]  # every training batch, no validation one
    calls.clear()
    assert run(data_args + ['--n_epoch', 1, '--random_shift', 1, '--run_name', 'shifted']) == 0
    assert {call[1:] for call in calls} == {(False, 1)}


{% endif -%}
def test_best_checkpoint_is_the_epoch_with_the_lowest_valid_loss(workdir, data_args):
    # a high lr makes the valid loss go up and down; save_every is 100, so best must not wait for it
    assert run(data_args + ['--n_epoch', 5, '--lr', 3e-2, '--warmup_steps', 0]) == 0
    logs, ckpts = only_run(workdir)
    with open(logs / 'metrics.csv', newline='', encoding='utf-8') as f:  # full precision: val.log's 6 decimals can tie
        losses = [float(row['valid_loss']) for row in csv.DictReader(f)]
    best_epoch = losses.index(min(losses)) + 1  # the first of equal losses: only a lower one replaces it
    best = load(ckpts / 'best_checkpoint.pt')
    assert best['epoch'] == best_epoch == best['best_epoch']
    assert best['best_loss'] == min(losses)


class ConstantModel(nn.Module):
    """Predicts the same thing whatever it learns, so the valid loss never improves after epoch 1."""

    def __init__(self, width, nan_at_call=None):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(width))
        self.calls, self.nan_at_call = 0, nan_at_call

    def forward(self, x, *rest):
        self.calls += self.training
        output = self.bias.expand(x.shape[0], -1) * 0 + 0.5
        if self.training and self.calls == self.nan_at_call:
            output = output * float('nan')
        return output


WIDTH = {{ "TEST_DATA_CONFIG['num_classes']" if cookiecutter.task == 'classification' else '1' }}


{% if cookiecutter.task == 'regression' -%}
class SqueezedModel(ConstantModel):
    """Returns (batch,) instead of (batch, 1): the usual `.squeeze()` slip in a regression model."""

    def forward(self, x, *rest):
        return super().forward(x, *rest)[:, 0]


{% endif -%}
@pytest.mark.parametrize('model', [
    ConstantModel(WIDTH + 1),  # cross-entropy takes a class too many silently; MSELoss broadcasts (batch, 2)
{%- if cookiecutter.task == 'regression' %}
    SqueezedModel(1),  # MSELoss broadcasts (batch,) against (batch, 1) targets: it trains, but on a wrong loss
{%- endif %}
])
def test_a_model_output_the_loss_does_not_expect_stops_before_training(workdir, data_args, monkeypatch, model):
    monkeypatch.setattr(train, 'build_model', lambda config: model)
    shape = tuple(model(torch.zeros(1, 1)).shape)
    with pytest.raises(RunError, match=re.escape(f'the model returns {shape} for one sample, but the loss needs '
                                                 f'(1, {WIDTH}): ') + r'.*; fix its forward in model.py$'):
        run(data_args + ['--n_epoch', 1])
    assert not (workdir / 'loggers').exists() and not (workdir / 'checkpoints').exists()  # 3.8: no run folders left


{%- if cookiecutter.dataset in ['csv', 'sequence', 'image_folder'] or cookiecutter.task == 'regression' %}
{%- set unscaled = {'csv': ('fit_feature_scaling(inputs)', 'features'), 'sequence': ('fit_feature_scaling(frames)', 'features'),
                    'image_folder': ('fit_feature_scaling(images)', 'image channels'), 'regression': ('fit_target_scaling(targets)', 'targets')} %}
{%- set missing = [unscaled[cookiecutter.dataset]] if cookiecutter.dataset in ['csv', 'sequence', 'image_folder'] else [] %}
{%- set missing = missing + [unscaled['regression']] if cookiecutter.task == 'regression' else missing %}


def test_a_model_without_fit_scaling_trains_unscaled_with_a_warning(workdir, data_args, monkeypatch):
    # your own model in place of model.py's: the data trains in its own units, and train.log says how to scale it
    monkeypatch.setattr(train, 'build_model', lambda config: ConstantModel(WIDTH))
    assert run(data_args + ['--n_epoch', 1]) == 0
    logs, _ = only_run(workdir)
    assert ('warning: ConstantModel has no '
            '{{ missing | map("first") | join(" or ") }}, '
            'so it trains on unscaled {{ missing | map("last") | join(" and ") }}, each in its own units; '
            'copy {{ "it and the buffers it fits" if missing | length == 1 else "them and the buffers they fit" }} from model.py to '
            'standardize them') in (logs / 'train.log').read_text()
{%- endif %}


class ChangedSamples(torch.utils.data.Dataset):
    """A dataset whose samples pass through `change`: the slips a hand-written __getitem__ makes."""

    def __init__(self, dataset, change):
        self.dataset, self.change = dataset, change

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        return self.change(self.dataset[index])


def target_changed(change):
    return lambda sample: (*sample[:-1], change(sample[-1]))

{%- if cookiecutter.task == 'regression' %}


def unchanged(sample):  # not a lambda: workers that forkserver starts (Python 3.14's default) get it pickled
    return sample


def without_targets(split):
    """The split as a dataset without a `targets` tensor: one of your own, say."""
    return ChangedSamples(split, unchanged)


def in_other_units(build_datasets, wrap=False):
    """build_datasets (train.py's) with the targets in the tens (20 y + 50: a temperature, an age)."""
    def build(config):
        train_set, valid_set = build_datasets(config)
        train_set.dataset.targets = train_set.dataset.targets * 20 + 50  # one dataset behind both splits
        return [without_targets(train_set), without_targets(valid_set)] if wrap else [train_set, valid_set]

    return build


def last_valid_mae(root, argv, monkeypatch):
    root.mkdir()
    monkeypatch.chdir(root)
    assert run(argv) == 0
    logs, ckpts = only_run(root)
    assert 'has no fit_' not in (logs / 'train.log').read_text()
    with open(logs / 'metrics.csv', newline='', encoding='utf-8') as f:
        return float(list(csv.DictReader(f))[-1]['valid_metric']), load(ckpts / 'best_checkpoint.pt')


def test_targets_far_from_0_and_1_train_as_well_as_ones_near_it(workdir, data_args, monkeypatch):
    # the model learns the targets at the training split's mean and std, and answers in their units: its valid
    # MAE is 20 times the one on the same targets near 0 (unscaled, the model started near 0: an MAE of about 50).
    # AdamW's steps do not change with the loss's scale, but clipping at a norm does, so it is off: the two runs
    # then take the same steps (with it on, their paths part, by 35% in MAE for a transformer on 128 features)
    argv = data_args + ['--n_epoch', 3, '--lr', LEARNING_LR, '--clip_flag', 'false']
    near_0, _ = last_valid_mae(workdir / 'near_0', argv, monkeypatch)
    monkeypatch.setattr(train, 'build_datasets', in_other_units(train.build_datasets))
    in_the_tens, checkpoint = last_valid_mae(workdir / 'in_the_tens', argv, monkeypatch)
    assert in_the_tens / 20 == pytest.approx(near_0, rel=1e-3)
    train_set, _ = in_other_units(build_datasets)(checkpoint['config'])
    targets = train_set.dataset.targets[train_set.indices].double()  # the validation targets are left out
    assert torch.allclose(checkpoint['model']['target_mean'].double(), targets.mean(0), rtol=1e-6)
    assert torch.allclose(checkpoint['model']['target_std'].double(), targets.std(0, correction=0), rtol=1e-5)

    # a dataset without a targets tensor (your own): the targets are read from its samples, to the same scaling
    monkeypatch.setattr(train, 'build_datasets', in_other_units(build_datasets, wrap=True))
    _, wrapped = last_valid_mae(workdir / 'wrapped', data_args + ['--n_epoch', 1], monkeypatch)
    for key in ('target_mean', 'target_std'):
        assert torch.allclose(wrapped['model'][key], checkpoint['model'][key], rtol=1e-6)


def test_targets_read_from_the_samples_are_a_random_few_of_a_large_split():
    # a dataset without a targets tensor: its samples are read, up to `most` of them, drawn across the split
    samples = torch.arange(1000.0).view(-1, 1)
    split = torch.utils.data.random_split(torch.utils.data.TensorDataset(samples, samples), [900, 100],
                                          generator=torch.Generator().manual_seed(0))[0]
    targets = training_targets(without_targets(split), None, most=50)
    assert len(targets) == len(set(targets.flatten().tolist())) == 50
    assert set(targets.flatten().tolist()) <= set(samples[split.indices].flatten().tolist())
    assert float(targets.max() - targets.min()) > 500  # not the first 50
    assert torch.equal(training_targets(without_targets(split), None, most=50, num_workers=2), targets)  # train.py's
    assert torch.equal(training_targets(without_targets(split), None), samples[split.indices][torch.randperm(
        900, generator=torch.Generator().manual_seed(0))])  # fewer than 4096: every one


class TargetsOnly(torch.utils.data.Dataset):
    """A dataset of your own whose samples must not be read: it keeps its targets in `targets`, in a list, say."""

    def __init__(self, targets):
        self.targets = targets

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        raise AssertionError('a sample was read')


def test_targets_kept_in_a_list_are_read_without_reading_a_sample():
    # as torchvision keeps labels; before, only a tensor was read, and every sample was loaded for its target
    targets = [[20.5], [31.0], [42.25], [50.0]]
    assert torch.equal(training_targets(Subset(TargetsOnly(targets), [3, 1]), None), torch.tensor([[50.0], [31.0]]))
    assert torch.equal(training_targets(TargetsOnly(torch.tensor(targets).numpy()), None), torch.tensor(targets))
{%- endif %}


@pytest.mark.parametrize('change, found', [
{%- if cookiecutter.task == 'classification' %}
    (lambda target: target.float(), '(1,) torch.float32'),  # labels read as floats: cross-entropy would fail
    (lambda target: target.view(1), '(1, 1) torch.int64'),  # (batch, 1): cross-entropy would refuse the shape
{%- else %}
    (lambda target: target[0], '(1,) torch.float32'),  # a number, not (1,): MSELoss broadcasts to (batch, batch)
    (lambda target: target.double(), '(1, 1) torch.float64'),  # numpy's float64: MSELoss fails in backward
{%- endif %}
])
def test_a_target_the_loss_does_not_expect_stops_before_training(workdir, data_args, monkeypatch, change, found):
    build_datasets = train.build_datasets
    monkeypatch.setattr(train, 'build_datasets',
                        lambda config: [ChangedSamples(d, target_changed(change)) for d in build_datasets(config)])
    with pytest.raises(RunError, match=re.escape(f"the dataset's target for one sample batches as {found}, but the "
                                                 'loss needs ') + r'.*; fix __getitem__ in dataset.py$'):
        run(data_args + ['--n_epoch', 1])
    assert not (workdir / 'loggers').exists() and not (workdir / 'checkpoints').exists()  # 3.8: no run folders left


{%- if cookiecutter.task == 'classification' %}


class Relabelled(ChangedSamples):
    """A dataset of your own: `split`'s samples with each label moved by `shift`, and all its labels in `targets`
    too, kept as `targets_kept_as` says: 'tensor' (as torchvision's MNIST has them), 'list' (as its CIFAR has them)
    or None (no `targets`)."""

    def __init__(self, split, shift, targets_kept_as):
        super().__init__(split, target_changed(lambda target: target + shift))
        if targets_kept_as:
            targets = torch.stack([split[i][-1] for i in range(len(split))]) + shift
            self.targets = targets.tolist() if targets_kept_as == 'list' else targets


@pytest.mark.parametrize('shift, targets_kept_as, message', [
    (lambda k: 1, 'tensor', lambda k, first: f"the dataset's labels run 1..{k}, but class indices start at 0; "
                                             f'subtract 1 from each label in dataset.py (or pass --num_classes {k + 1} '
                                             'if class 0 exists)'),
    (lambda k: k, 'tensor', lambda k, first: f"the dataset's labels go up to {2 * k - 1}, but num_classes is {k} "
                                             f'(class indices 0..{k - 1}); pass --num_classes {2 * k}, or fix the '
                                             'labels in dataset.py'),
    (lambda k: -1, 'tensor', lambda k, first: "the dataset's labels include -1, but class indices start at 0 (0..{} "
                                              'with num_classes {}); fix the labels in dataset.py'.format(k - 1, k)),
    (lambda k: -1, 'list', lambda k, first: "the dataset's labels include -1, but class indices start at 0 (0..{} "
                                            'with num_classes {}); fix the labels in dataset.py'.format(k - 1, k)),
    # without `targets`, the sample check_one_sample tries: the first validation sample
    (lambda k: k, None, lambda k, first: f'a validation sample has label {first + k}, but num_classes is {k} (class '
                                         f'indices 0..{k - 1}); pass --num_classes {first + k + 1} or more, or fix the '
                                         'labels in dataset.py'),
])
def test_labels_outside_the_class_indices_stop_before_anything_is_written(workdir, data_args, monkeypatch, shift,
                                                                          targets_kept_as, message):
    # before, the loss failed mid-run ("Target 10 is out of bounds", on CUDA a device-side assert)
    splits = {}

    def build(config):
        splits['k'] = k = config['num_classes']
        splits['plain'] = build_datasets(config)
        return [Relabelled(split, shift(k), targets_kept_as) for split in splits['plain']]

    monkeypatch.setattr(train, 'build_datasets', build)
    with pytest.raises(RunError) as raised:
        run(data_args + ['--n_epoch', 1])
    k, (train_split, valid_split) = splits['k'], splits['plain']
    assert set(Relabelled(train_split, 0, 'tensor').targets.tolist()) == set(range(k))  # as the messages assume
    assert str(raised.value) == message(k, int(valid_split[0][-1]))
    assert not (workdir / 'loggers').exists() and not (workdir / 'checkpoints').exists()


class OneLabelChanged(ChangedSamples):
    """A dataset of your own without `targets`: `dataset`'s samples, with sample `index` labelled `label`."""

    def __init__(self, dataset, index, label):
        super().__init__(dataset, target_changed(lambda target: torch.tensor(label)))
        self.index = index

    def __getitem__(self, index):
        return super().__getitem__(index) if index == self.index else self.dataset[index]


def test_a_label_outside_the_classes_mid_run_names_the_labels_and_the_resume(workdir, data_args, monkeypatch):
    # without `targets` only the first validation sample's label is checked at the start; before, a later one
    # outside the classes stopped the run with "fix the cause" and the loss's "Target 10 is out of bounds"
    def with_a_bad_label(config):
        train_split, valid_split = build_datasets(config)
        return train_split, OneLabelChanged(valid_split, len(valid_split) - 1, config['num_classes'])

    monkeypatch.setattr(train, 'build_datasets', with_a_bad_label)
    with pytest.raises(IndexError):
        run(data_args + ['--n_epoch', 2])
    logs, ckpts = only_run(workdir)
    k = load(ckpts / 'latest_checkpoint.pt')['config']['num_classes']
    log = (logs / 'train.log').read_text()
    assert re.search(rf'error at epoch 1 in validation: saved checkpoints/{ckpts.name}/latest_checkpoint.pt at step '
                     rf"\d+; a sample has label {k}, outside the classes 0\.\.{k - 1} \(the loss's 'Target {k} is "
                     rf"out of bounds\.'\): fix the labels in dataset.py \(or start a new run with --num_classes "
                     rf'{k + 1}\), then resume with: python train.py --resume {logs.name}; a dataset with `targets` '
                     'has them all checked at the start\n', log), log
    monkeypatch.setattr(train, 'build_datasets', build_datasets)  # the labels fixed: the named resume goes on
    assert run(['--resume', logs.name]) == 0
    assert load(ckpts / 'latest_checkpoint.pt')['epoch'] == 2


def test_the_label_check_reads_the_labels_of_each_split_only():
    from utils import check_label_range

    labels = torch.tensor([0, 1, 2, 3, 7, 9])
    dataset = torch.utils.data.TensorDataset(torch.zeros(6, 1), labels)
    dataset.targets = labels
    check_label_range(Subset(dataset, [0, 1, 2]), Subset(dataset, [3]), num_classes=4)  # MNIST's digits 0-3, say
    with pytest.raises(RunError, match=re.escape("the dataset's labels go up to 7, but num_classes is 4 (class indices "
                                                 '0..3); pass --num_classes 8, or fix the labels in dataset.py') + '$'):
        check_label_range(Subset(dataset, [0, 1, 2]), Subset(dataset, [3, 4]), num_classes=4)


def test_class_names_that_mix_numbers_and_other_names_are_a_warning():
    # one '-1' among class numbers makes the csv and sequence readers read every label as a name
    from utils import labels_warning

    dataset = torch.utils.data.TensorDataset(torch.zeros(3, 1), torch.tensor([0, 1, 2]))
    dataset.classes = ['-1', '0', '1']
    assert labels_warning(Subset(dataset, [0, 1]), 3) == (
        "warning: the labels are class names, numbered in sorted order, as some are not class numbers (e.g. '-1'), "
        "so label '0' is class 1; if the labels are numbers, fix the ones that are not")
    dataset.classes = ['0.0', '1.0', '10.0', '2.0']  # pandas writes a float column so: '10.0' sorts before '2.0'
    assert labels_warning(Subset(dataset, [0, 1]), 4) == (
        "warning: the labels are class names, numbered in sorted order, as some are not class numbers (e.g. '0.0'), "
        "so label '10.0' is class 2; if the labels are numbers, fix the ones that are not")
    for classes in (['cat', 'dog', 'emu'], ['0', '1', '10', '2'], ['0', '1', 'other'], ['-1', '1'], ['0.0', '2.5']):
        dataset.classes = classes  # names; numbers only (image folders); numbers in their places (-1 and 1: an SVM's)
        assert labels_warning(Subset(dataset, [0, 1]), len(classes)) is None, classes


@pytest.mark.parametrize('kept_as', [torch.Tensor.tolist, torch.Tensor.numpy], ids=['list', 'numpy'])
def test_the_label_checks_read_targets_kept_in_a_list_or_an_array(kept_as):
    # torchvision's CIFAR and ImageFolder keep their labels in a list; before, only a tensor was read
    from utils import check_label_range, labels_warning

    labels = torch.tensor([0, 1, 2, 7])
    dataset = torch.utils.data.TensorDataset(torch.zeros(4, 1), labels)
    dataset.targets = kept_as(labels)
    with pytest.raises(RunError, match=re.escape("the dataset's labels go up to 7, but num_classes is 4 (class indices "
                                                 '0..3); pass --num_classes 8, or fix the labels in dataset.py') + '$'):
        check_label_range(Subset(dataset, [0, 1]), Subset(dataset, [2, 3]), num_classes=4)
    assert labels_warning(Subset(dataset, [0, 1]), num_classes=10).startswith(
        'warning: the labels go up to 7, but num_classes is 10, so outputs 8..9 are never a right answer')
    dataset.targets = ['cat', 'dog', 'cat', 'bird']  # names, not class indices: nothing to check
    check_label_range(Subset(dataset, [0, 1]), Subset(dataset, [2, 3]), num_classes=4)
    assert labels_warning(Subset(dataset, [0, 1]), num_classes=10) is None


def test_balanced_class_weights_check_every_label_they_read(workdir, data_args, monkeypatch):
    # a dataset without a `targets` tensor, whose tried sample (validation's first) is a class: --class_weights
    # balanced reads every training label, so none is out of range (before, a negative one failed bincount)
    def build(config):
        train_split, valid_split = build_datasets(config)
        return [Relabelled(train_split, -1, targets_kept_as=None), valid_split]

    monkeypatch.setattr(train, 'build_datasets', build)
    with pytest.raises(RunError, match=re.escape("the dataset's labels include -1, but class indices start at 0 (0..")):
        run(data_args + ['--n_epoch', 1, '--class_weights', 'balanced'])
    assert 'failed (RunError)' in (only_run(workdir)[0] / 'note.log').read_text()  # found in train(), after 3.10


def test_labels_inside_the_class_indices_train_from_a_dataset_of_your_own(workdir, data_args, monkeypatch):
    monkeypatch.setattr(train, 'build_datasets',
                        lambda config: [Relabelled(split, 0, 'list') for split in build_datasets(config)])
    assert run(data_args + ['--n_epoch', 1]) == 0
{%- endif %}


def as_dict(sample):
    return {'inputs': sample[:-1], 'target': sample[-1]}  # as Hugging Face's datasets return samples


def test_samples_that_are_not_tuples_stop_before_anything_runs_the_model(workdir, data_args, monkeypatch):
    build_datasets = train.build_datasets
    monkeypatch.setattr(train, 'build_datasets',
                        lambda config: [ChangedSamples(d, as_dict) for d in build_datasets(config)])
    with pytest.raises(RunError, match=re.escape("the dataset's samples are dict, but train() needs a tuple "
                                                 '(inputs..., target) to call model(*inputs); fix __getitem__ in '
                                                 'dataset.py') + '$'):  # before the collate_fn meets them
        run(data_args + ['--n_epoch', 1])
    assert not (workdir / 'loggers').exists() and not (workdir / 'checkpoints').exists()  # 3.8: no run folders left


def test_a_collate_fn_that_returns_no_tuple_stops_before_anything_runs_the_model(workdir, data_args, monkeypatch):
    monkeypatch.setattr(train, 'collate_fn', lambda samples: {'batch': samples})
    with pytest.raises(RunError, match=re.escape("the dataset's samples batch as dict, but train() needs a tuple "
                                                 '(inputs..., target) to call model(*inputs); fix collate_fn in '
                                                 'dataset.py') + '$'):
        run(data_args + ['--n_epoch', 1])
    assert not (workdir / 'loggers').exists() and not (workdir / 'checkpoints').exists()


def first_input_changed(change):
    """A collate_fn whose batches have their first input passed through `change`."""
    collate = train.collate_fn or torch.utils.data.default_collate
    return lambda samples: (lambda batch: (change(batch[0]), *batch[1:]))(collate(samples))


@pytest.mark.parametrize('change, message', [
    (lambda x: x.tolist(), "the dataset's inputs batch as list, but model(*inputs) needs tensors; return each input "
                           'as a tensor (torch.as_tensor(x)) from __getitem__ in dataset.py'),
    (lambda x: x.double(), "the model fails on the dataset's torch.float64 inputs ("),  # NumPy's default float
{%- if cookiecutter.dataset == 'synthetic' %}
    # an image's bytes (a model that scales its inputs, (x - mean) / std, takes them as they are)
    (lambda x: x.to(torch.uint8), "the model fails on the dataset's torch.uint8 inputs ("),
{%- endif %}
])
def test_inputs_the_model_cannot_take_stop_before_anything_is_written(workdir, data_args, monkeypatch, change, message):
    monkeypatch.setattr(train, 'collate_fn', first_input_changed(change))
    with pytest.raises(RunError) as error:
        run(data_args + ['--n_epoch', 1])
    assert str(error.value).startswith(message) and '\n' not in str(error.value)
    scaled = ' (bytes 0..255 of an image: x.float() / 255)' if 'uint8' in message else ''
    if 'model fails' in message:
        assert str(error.value).endswith(f'): its weights are torch.float32; return torch.float32 inputs{scaled} from '
                                         '__getitem__ in dataset.py')
    assert not (workdir / 'loggers').exists() and not (workdir / 'checkpoints').exists()


def older_torch_than_the_floor():
    major, minor = OLDEST_TORCH
    return f'{major}.{minor - 1}.1+cu121' if minor else f'{major - 1}.13.1'


def test_a_torch_older_than_requirements_floor_stops_before_anything_is_written(workdir, data_args, monkeypatch):
    version = older_torch_than_the_floor()
    monkeypatch.setattr(torch, '__version__', version)
    floor = '.'.join(map(str, OLDEST_TORCH))
    with pytest.raises(RunError, match=re.escape(f'this project needs torch {floor} or newer, found {version}; '
                                                 'pip install -r requirements.txt')):
        run(data_args + ['--n_epoch', 1])
    assert not (workdir / 'loggers').exists() and not (workdir / 'checkpoints').exists()


@pytest.mark.parametrize('newer', ['{major}.{minor}.0a0+3bcc3cddb5', '{major}.{minor}.0', '{major}.{minor_10}.1',
                                   '{major_1}.0.0'])  # NVIDIA's containers ship pre-releases such as the first
def test_torch_at_or_above_requirements_floor_is_accepted(monkeypatch, newer):
    major, minor = OLDEST_TORCH
    version = newer.format(major=major, minor=minor, minor_10=minor + 10, major_1=major + 1)
    monkeypatch.setattr(torch, '__version__', version)
    assert setup_device()[1:] == (0, 1)  # no error: one process, on whichever device this machine has


def test_requirements_floor_is_the_torch_that_train_checks():
    floor = re.search(r'^torch>=([\d.]+)$', (PROJECT / 'requirements.txt').read_text(), re.MULTILINE)
    assert floor and floor.group(1) == '.'.join(map(str, OLDEST_TORCH))


class DetachedModel(ConstantModel):
    """Returns its output cut from the graph: a forward under torch.no_grad(), or a stray .detach()."""

    def forward(self, x, *rest):
        return super().forward(x, *rest).detach()


def frozen(model):
    return model.requires_grad_(False)


@pytest.mark.parametrize('build', [lambda config: frozen(build_model(config)),
                                   lambda config: DetachedModel(WIDTH)], ids=['frozen', 'detached'])
def test_a_model_with_nothing_to_train_stops_before_anything_is_written(workdir, data_args, monkeypatch, build):
    monkeypatch.setattr(train, 'build_model', build)
    with pytest.raises(RunError, match=re.escape("the model's output needs no gradient (no parameter has "
                                                 'requires_grad, or forward detaches it), so training would change '
                                                 'nothing; unfreeze some parameters in model.py') + '$'):
        run(data_args + ['--n_epoch', 1])
    assert not (workdir / 'loggers').exists() and not (workdir / 'checkpoints').exists()  # 3.8: no run folders left


def with_unused_layers(config, n_layers, built):
    """The project's model plus layers that forward never calls: built for an experiment, then left out."""
    model = build_model(config)
    model.unused = nn.Sequential(*[nn.Linear(2, 2) for _ in range(n_layers)])
    built['unused'] = {key: value.clone() for key, value in model.unused.state_dict().items()}
    return model


@pytest.mark.parametrize('n_layers, named', [
    (1, 'unused.0.weight, unused.0.bias'),
    (3, 'unused.0.weight, unused.0.bias, unused.1.weight, unused.1.bias and 2 more'),
])
def test_parameters_the_output_does_not_use_are_named_in_a_warning(workdir, data_args, monkeypatch, n_layers, named):
    built = {}
    monkeypatch.setattr(train, 'build_model', lambda config: with_unused_layers(config, n_layers, built))
    assert run(data_args + ['--n_epoch', 1]) == 0
    logs, ckpts = only_run(workdir)
    assert (f'| warning: the model output does not depend on {named} (in training mode), so they do not '
            'train; use them in forward, or freeze them with requires_grad_(False) in model.py\n'
            ) in (logs / 'train.log').read_text()
    saved = load(ckpts / 'latest_checkpoint.pt')['model']
    assert all(torch.equal(saved[f'unused.{key}'], value) for key, value in built['unused'].items())  # not even decayed


def test_a_model_whose_output_uses_every_parameter_gets_no_warning(workdir, data_args):
    assert run(data_args + ['--n_epoch', 1]) == 0
    assert 'does not depend on' not in (only_run(workdir)[0] / 'train.log').read_text()


def test_srun_starting_several_tasks_without_torchrun_is_a_warning_in_each_run(workdir, data_args, monkeypatch):
    monkeypatch.delenv('RANK', raising=False)
    monkeypatch.setenv('SLURM_STEP_NUM_TASKS', '4')  # `srun python train.py` in a job of 4 tasks
    assert run(data_args + ['--n_epoch', 1]) == 0
    assert ('| warning: SLURM runs this job step as 4 tasks (SLURM_STEP_NUM_TASKS), and each that starts train.py '
            'trains a run of its own, not one DDP run over 4 processes; for DDP start one task per node that runs '
            'torchrun (README.md: Multi-GPU and multi-node)\n') in (only_run(workdir)[0] / 'train.log').read_text()
    monkeypatch.setenv('SLURM_STEP_NUM_TASKS', '1')
    assert slurm_tasks_warning() is None
    monkeypatch.setenv('SLURM_STEP_NUM_TASKS', '2')
    monkeypatch.setenv('RANK', '0')  # `srun torchrun ...`: torchrun's ranks
    assert slurm_tasks_warning() is None


class ModeDependentModel(nn.Module):
    """The project's model plus a layer used in one mode only: an auxiliary head that only training adds
    (`if self.training`), or a calibration layer that only eval mode applies. With dropout and BatchNorm,
    whose random numbers and running statistics the check must leave as they were."""

    def __init__(self, config, extra_in):
        super().__init__()
        self.body, self.extra_in = build_model(config), extra_in
        self.norm = nn.BatchNorm1d(WIDTH)
        self.drop = nn.Dropout(0.5)
        self.extra = nn.Linear(WIDTH, WIDTH)

    def forward(self, *inputs):
        output = self.drop(self.norm(self.body(*inputs)))
        if self.training == (self.extra_in == 'training'):
            output = output + self.extra(output)
        return output


@pytest.mark.parametrize('extra_in', ['training', 'eval'])
def test_the_gradient_check_runs_in_training_mode_and_leaves_no_trace(workdir, data_args, monkeypatch, extra_in):
    from utils import check_one_sample, get_rng_state

    monkeypatch.setattr(train, 'build_model', lambda config: ModeDependentModel(config, extra_in))
    assert run(data_args + ['--n_epoch', 1]) == 0
    warning = ('| warning: the model output does not depend on extra.weight, extra.bias (in training mode), so they '
               'do not train')
    assert (warning in (only_run(workdir)[0] / 'train.log').read_text()) == (extra_in == 'eval')

    config = load(only_run(workdir)[1] / 'latest_checkpoint.pt')['config']
    loader = torch.utils.data.DataLoader(train.build_datasets(config)[1], collate_fn=train.collate_fn)
    model = ModeDependentModel(config, extra_in)
    before, buffers = get_rng_state(), {k: v.clone() for k, v in model.state_dict().items()}
    unused = ['extra.weight', 'extra.bias'] * (extra_in == 'eval')
    assert check_one_sample(model, loader, torch.device('cpu'), config, 64) == unused
    after = get_rng_state()
    assert torch.equal(before['torch'], after['torch']) and before['python'][1].equal(after['python'][1])
    assert all(torch.equal(value, buffers[key]) for key, value in model.state_dict().items())  # BatchNorm's statistics
    assert model.training and all(p.grad is None for p in model.parameters())


class BatchNormedModel(nn.Module):
    """The project's model with BatchNorm1d on its output: in training mode it refuses a batch of one sample."""

    def __init__(self, config):
        super().__init__()
        self.body, self.norm = build_model(config), nn.BatchNorm1d(WIDTH)

    def forward(self, *inputs):
        return self.norm(self.body(*inputs))


def first_training_samples(n):
    """build_datasets, with the first n samples of its training split."""
    def build(config):
        train_set, valid_set = build_datasets(config)
        return [Subset(train_set, range(n)), valid_set]

    return build


def test_a_model_that_cannot_train_on_one_sample_stops_before_anything_is_written_when_a_batch_would_hold_one(
        workdir, data_args, monkeypatch):
    monkeypatch.setattr(train, 'build_datasets', first_training_samples(2 * TEST_BATCH_SIZE + 1))
    monkeypatch.setattr(train, 'build_model', BatchNormedModel)
    # before, the first epoch's last step failed (and every resume at the same step)
    with pytest.raises(RunError, match=re.escape('the model cannot train on a batch of one sample (Expected more '
                                                 'than 1 value per channel when training') + r'.*' + re.escape(
            f"and each epoch's last training batch would hold one ({2 * TEST_BATCH_SIZE + 1} training samples in "
            f'batches of {TEST_BATCH_SIZE}); use --batch_size {TEST_BATCH_SIZE - 1} or {TEST_BATCH_SIZE + 1}, or make '
            'model.py train on a batch of one') + '$'):
        run(data_args + ['--n_epoch', 1])
    assert not (workdir / 'loggers').exists() and not (workdir / 'checkpoints').exists()
    with pytest.raises(RunError, match=re.escape('and every training batch holds one (batch_size 1); use --batch_size '
                                                 '3, or make model.py train on a batch of one') + '$'):
        run(data_args + ['--n_epoch', 1, '--batch_size', 1])  # 33 samples: 2 leaves one over too
    assert run(data_args + ['--n_epoch', 1, '--batch_size', TEST_BATCH_SIZE - 1]) == 0  # a size it names
    monkeypatch.setattr(train, 'build_model', build_model)  # trains on a batch of one: no error
    assert run(data_args + ['--n_epoch', 1]) == 0


class Probed(nn.Module):
    """The project's model with dropout, and a buffer that a training-mode forward changes; records each
    forward's batch size and mode."""

    def __init__(self, config):
        super().__init__()
        self.body, self.drop, self.calls = build_model(config), nn.Dropout(0.5), []
        self.register_buffer('seen', torch.zeros(()))

    def forward(self, *inputs):
        self.calls.append((len(inputs[0]), self.training))
        if self.training:
            self.seen += len(inputs[0])
        return self.drop(self.body(*inputs))


def what_main_checks(data_args, monkeypatch):
    """The validation loader, device and config that main() hands check_one_sample; then no training."""
    passed = {}
    monkeypatch.setattr(train, 'check_one_sample', lambda *args: passed.update(args=args) or sys.exit(3))
    with pytest.raises(SystemExit):
        run(data_args)
    _, loader, device, config, _ = passed['args']
    return loader, device, config


@pytest.mark.parametrize('train_samples, batch_size, tried', [(33, 16, True), (32, 16, False), (7, 1, True),
                                                              (1, 16, True), (17, 8, True), (18, 8, False)])
def test_a_batch_of_one_is_tried_only_when_training_takes_one_and_leaves_no_trace(workdir, data_args, monkeypatch,
                                                                                   train_samples, batch_size, tried):
    from utils import check_one_sample, get_rng_state

    loader, device, config = what_main_checks(data_args, monkeypatch)
    model = Probed(config)
    before, buffers = get_rng_state(), {k: v.clone() for k, v in model.state_dict().items()}
    assert check_one_sample(model, loader, device, {**config, 'batch_size': batch_size}, train_samples) == []
    assert model.calls == [(1, False), (2, True)] + [(1, True)] * tried
    after = get_rng_state()
    assert torch.equal(before['torch'], after['torch']) and before['python'][1].equal(after['python'][1])
    assert all(torch.equal(value, buffers[key]) for key, value in model.state_dict().items())
    assert model.training and all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize('train_samples, batch_size, distributed, where, fix', [
    (17, 8, True, "each epoch's last training batch would hold one (17 training samples per process in batches of 8)",
     'use --batch_size 7 or 9'),
    (10, 3, False, "each epoch's last training batch would hold one (10 training samples in batches of 3)",
     'use --batch_size 2 or 4'),
    (7, 2, False, "each epoch's last training batch would hold one (7 training samples in batches of 2)",
     'use --batch_size 4'),  # none smaller than 2; 3 leaves one over too
    (1, 16, True, 'the training split holds one sample per process', 'train on more samples'),
])
def test_a_batch_of_one_names_the_batch_sizes_that_avoid_it(workdir, data_args, monkeypatch, train_samples, batch_size,
                                                              distributed, where, fix):
    import utils

    loader, device, config = what_main_checks(data_args, monkeypatch)
    monkeypatch.setattr(utils, 'is_distributed', lambda: distributed)
    with pytest.raises(RunError) as error:
        utils.check_one_sample(BatchNormedModel(config), loader, device, {**config, 'batch_size': batch_size},
                               train_samples)
    assert str(error.value).endswith(f'and {where}; {fix}, or make model.py train on a batch of one')


class TupleInTrainingModel(nn.Module):
    """Returns (output, auxiliary loss) in training mode only: the loss in train() would fail on the tuple."""

    def __init__(self, config):
        super().__init__()
        self.body = build_model(config)

    def forward(self, *inputs):
        output = self.body(*inputs)
        return (output, output.square().mean()) if self.training else output


def test_a_model_that_returns_another_shape_in_training_mode_stops_before_anything_is_written(workdir, data_args,
                                                                                               monkeypatch):
    monkeypatch.setattr(train, 'build_model', TupleInTrainingModel)
    with pytest.raises(RunError, match=re.escape('the model returns tuple for 2 samples in training mode, but the loss '
                                                 f'needs (batch, {WIDTH}) as in eval mode; fix its forward in model.py')
                       + '$'):
        run(data_args + ['--n_epoch', 1])
    assert not (workdir / 'loggers').exists() and not (workdir / 'checkpoints').exists()


def test_a_model_too_large_for_memory_is_a_one_line_error_before_anything_is_written(workdir, data_args):
    width_option = SMALL_MODEL[0]  # a typo'd width (10**12): before, the allocator's traceback
    with pytest.raises(RunError, match=r"^the model does not fit in memory \(an allocation of [\d,.]+ GB failed\); "
                                       rf"pass smaller sizes among .*{width_option[2:]}.*, or build a smaller model"):
        run(data_args + ['--n_epoch', 1, width_option, 10**12])
    assert not (workdir / 'loggers').exists() and not (workdir / 'checkpoints').exists()


@pytest.mark.parametrize('error, failed', [
    (torch.cuda.OutOfMemoryError('CUDA out of memory. Tried to allocate 3.64 TiB. GPU 0 has a total capacity of 79 '
                                 'GiB\nof which ...'), 'CUDA out of memory. Tried to allocate 3.64 TiB. GPU 0 has a '
                                                        'total capacity of 79 GiB'),
    (MemoryError(), 'MemoryError'),  # Python's own, from a model that builds a huge list, say
    (RuntimeError('mat1 and mat2 shapes cannot be multiplied'), None),  # not a memory error: raised as it is
])
def test_only_an_allocation_that_fails_while_the_model_is_built_is_named_a_memory_error(error, failed):
    with pytest.raises(RunError if failed else type(error)) as raised, model_memory_errors(('width', 'depth')):
        raise error
    expected = (f'the model does not fit in memory ({failed}); pass smaller sizes among width, depth, or build a '
                'smaller model in model.py') if failed else str(error)
    assert str(raised.value) == expected


def test_early_stop_triggers_after_early_stop_epochs_without_improvement(workdir, data_args, monkeypatch):
    monkeypatch.setattr(train, 'build_model', lambda config: ConstantModel(WIDTH))
    assert run(data_args + ['--n_epoch', 20, '--early_stop', 3]) == 0
    logs, ckpts = only_run(workdir)
    assert len(epoch_lines(logs / 'val.log')) == 4  # best at 1, then 3 epochs without improvement
    assert 'early stop: valid loss has not improved for 3 epochs (best ' in (logs / 'val.log').read_text()
    latest = load(ckpts / 'latest_checkpoint.pt')
    assert latest['epoch'] == 4 and latest['early_stop_count'] == 3


def test_early_stop_0_is_off_also_for_a_resumed_early_stopped_run(workdir, data_args, monkeypatch):
    monkeypatch.setattr(train, 'build_model', lambda config: ConstantModel(WIDTH))
    assert run(data_args + ['--n_epoch', 6, '--early_stop', 2]) == 0
    logs, ckpts = only_run(workdir)
    assert len(epoch_lines(logs / 'val.log')) == 3  # best at 1, then 2 without improvement
    assert run(['--resume', logs.name, '--early_stop', 0]) == 0
    assert len(epoch_lines(logs / 'val.log')) == 6 and load(ckpts / 'latest_checkpoint.pt')['epoch'] == 6
    assert '| finished 6 epochs' in (logs / 'val.log').read_text()


def test_one_epoch_is_one_epoch_in_the_logs(workdir, data_args, monkeypatch):
    monkeypatch.setattr(train, 'build_model', lambda config: ConstantModel(WIDTH))
    assert run(data_args + ['--n_epoch', 1]) == 0
    assert run(data_args + ['--n_epoch', 5, '--early_stop', 1]) == 0
    first, second = sorted((workdir / 'loggers').iterdir())
    assert '| finished 1 epoch (best valid loss ' in (first / 'val.log').read_text()
    assert '| early stop: valid loss has not improved for 1 epoch (best ' in (second / 'val.log').read_text()


def test_nan_loss_stops_with_the_epoch_and_step_and_keeps_best(workdir, data_args, monkeypatch):
    steps_per_epoch = 8  # 128 training samples / batch 16; 3.8's check makes the first training-mode call
    monkeypatch.setattr(train, 'build_model', lambda config: ConstantModel(WIDTH, nan_at_call=1 + steps_per_epoch + 2))
    assert run(data_args + ['--n_epoch', 5]) == train.NONFINITE_EXIT_CODE
    logs, ckpts = only_run(workdir)
    assert f'NaN or Inf at epoch 2 step {steps_per_epoch + 2}' in (logs / 'train.log').read_text()
    best = ckpts / 'best_checkpoint.pt'
    assert load(best)['epoch'] == 1  # written after epoch 1, untouched since
    assert not (ckpts / 'latest_checkpoint.pt').exists()


def test_overrides_take_the_type_of_the_default():
    overrides, resume, run_name = parse_args({'lr': 1e-4, 'n_epoch': 250, 'clip_flag': True, 'name': 'x'},
                                             ['--lr', '3e-4', '--n_epoch', '10', '--clip_flag', 'false', '--name', 'y'])
    assert overrides == {'lr': 3e-4, 'n_epoch': 10, 'clip_flag': False, 'name': 'y'} and resume is run_name is None
    assert type(overrides['lr']) is float and type(overrides['n_epoch']) is int


def test_an_empty_value_is_taken_for_a_key_whose_default_is_empty(tmp_path):
    (tmp_path / 'experiment.json').write_text('{"init_from": ""}')
    defaults = {'init_from': '', 'amp': 'none'}
    assert parse_args(defaults, ['--init_from', ''])[0] == {'init_from': ''}
    assert parse_args(defaults, ['--config', str(tmp_path / 'experiment.json')])[0] == {'init_from': ''}
    with pytest.raises(RunError, match="--amp is empty"):
        parse_args(defaults, ['--init_from', '', '--amp', ''])


@pytest.mark.parametrize('argv, message', [
    (['--no_such_key', '1'], 'unknown option --no_such_key; valid keys: --resume, --run_name, --config, --seed'),
    (['--n_epochs', '5'], 'unknown option --n_epochs; did you mean --n_epoch? valid keys: --resume, --run_name'),
    (['--run-name', 'x'], 'unknown option --run-name; did you mean --run_name? valid keys:'),
    (['--device', 'cpu'], '--device is not an option: train.py takes cuda, then mps, then cpu (3.2); '
                          'CUDA_VISIBLE_DEVICES= python train.py trains on the CPU'),
    (['--gpu=1'], '--gpu=1 is not an option: train.py takes cuda, then mps, then cpu (3.2)'),
    (['--n_epoch', 'ten'], "expected int, got 'ten'"),
    (['--clip_flag', 'maybe'], "expected true or false, got 'maybe'"),
    (['--n_epoch', '0'], 'n_epoch must be at least 1, got 0'),
    (['--early_stop', '-1'], 'early_stop must be at least 0, got -1'),
    (['--valid_ratio', '1.5'], 'valid_ratio must be between 0 and 1'),
    (['--grad_accum_steps', '0'], 'grad_accum_steps must be at least 1, got 0'),
    (['--clip_max_norm', '0'], 'clip_max_norm must be positive, got 0'),
    (['--seed', '-5'], 'seed must be between 0 and 4294967295, got -5'),
    (['--seed', '4294967296'], 'seed must be between 0 and 4294967295, got 4294967296'),
    (['--weight_decay', 'nan'], 'weight_decay must be a finite number, got nan'),
    (['--lr', 'inf'], 'lr must be a finite number, got inf'),  # positive, but it trains to NaN
    (['--clip_max_norm', 'Infinity'], 'clip_max_norm must be a finite number, got inf'),
    (['--dropout=-inf'], 'dropout must be a finite number, got -inf'),
    # "$VAR" of an unset shell variable, and folders a run cannot be made in
    (['--amp', ''], '--amp is empty (an unset shell variable?); give it a value, or leave --amp out for its default '
                    "'none'"),
    (['--config', ''], '--config is empty (an unset shell variable?); give it a value, or leave --config out for the'),
    (['--loggers_dir', '.'], "loggers_dir '.' names no new folder for this run; pass one to create, such as "
                             '--loggers_dir loggers/exp1'),
    (['--checkpoints_dir', '/'], "checkpoints_dir '/' names no new folder for this run"),
    (['--checkpoints_dir', 'x/..'], "checkpoints_dir 'x/..' names no new folder for this run"),
    (['--loggers_dir', 'x', '--checkpoints_dir', './x/'], "loggers_dir 'x' and checkpoints_dir './x/' overlap; a "
                                                          'run needs two folders side by side, such as --loggers_dir'),
    (['--loggers_dir', 'x', '--checkpoints_dir', 'x/ckpt'], "loggers_dir 'x' and checkpoints_dir 'x/ckpt' overlap"),
    (['--loggers_dir', 'y/../x/logs', '--checkpoints_dir', 'x'], "loggers_dir 'y/../x/logs' and checkpoints_dir 'x' "
                                                                 'overlap'),
    (['--num_workers', '-1'], 'num_workers must be 0 or more, got -1'),
    (['--save_minutes', '-1'], 'save_minutes must be 0 or more, got -1.0'),
    (['--stall_minutes', 'nan'], 'stall_minutes must be a finite number, got nan'),
    (['--stall_minutes', '-0.5'], 'stall_minutes must be 0 or more, got -0.5'),
    (['--dropout', '1'], 'dropout must be at least 0 and below 1, got 1.0'),
{%- if cookiecutter.model == 'mlp' %}
    (['--hidden_dim', '0'], 'hidden_dim must be at least 1, got 0'),
    (['--n_layers', '-1'], 'n_layers must be at least 0, got -1'),
{%- elif cookiecutter.model == 'cnn' %}
    (['--base_channels', '0'], 'base_channels must be at least 1, got 0'),
{%- else %}
    (['--n_heads', '3'], 'd_model must be a multiple of n_heads (3), got 128; e.g. --d_model 129'),
    (['--n_layers', '0'], 'n_layers must be at least 1, got 0'),
    (['--max_frames', '0'], 'max_frames must be at least 1, got 0'),
{%- endif %}
{%- if cookiecutter.model == 'cnn' or cookiecutter.dataset == 'image_folder' %}
    (['--image_size', '4'], 'image_size must be at least 8, got 4'),
    (['--random_shift', '-1'], 'random_shift must be at least 0, got -1'),
    (['--random_shift', '32', '--image_size', '32'], 'random_shift must be below image_size (32), got 32'),
{%- if cookiecutter.dataset == 'image_folder' %}
    (['--resize', 'crop'], "resize must be stretch, center_crop or pad, got 'crop'"),
{%- endif %}
{%- else %}
    (['--num_features', '0'], 'num_features must be at least 1, got 0'),
{%- endif %}
{%- if cookiecutter.task == 'classification' %}
    (['--num_classes', '1'], 'num_classes must be at least 2, got 1'),
    (['--class_weights', 'inverse'], "class_weights must be none or balanced, got 'inverse'"),
{%- endif %}
{%- if cookiecutter.dataset == 'synthetic' %}
    (['--n_samples', '1'], 'n_samples must be at least 2, got 1'),
{%- endif %}
])
def test_bad_overrides_fail_clearly_before_anything_is_written(workdir, argv, message):
    with pytest.raises(RunError, match=re.escape(message)):
        train.main(argv)
    assert not (workdir / 'loggers').exists() and not (workdir / 'checkpoints').exists()


@pytest.mark.parametrize('encoding', ['utf-8', 'utf-8-sig'])  # -sig: with a BOM, as Windows editors may save it
def test_a_config_file_sets_keys_and_the_command_line_wins(workdir, data_args, encoding):
    (workdir / 'experiment.json').write_text('{"n_epoch": 3, "lr": 0.002, "clip_flag": false, "weight_decay": 0}',
                                             encoding=encoding)
    assert run(data_args + ['--config', 'experiment.json', '--n_epoch', 1]) == 0
    logs, ckpts = only_run(workdir)
    saved = load(ckpts / 'latest_checkpoint.pt')['config']
    assert (saved['n_epoch'], saved['lr'], saved['clip_flag'], saved['weight_decay']) == (1, 0.002, False, 0.0)
    assert type(saved['weight_decay']) is float  # typed from the default, as on the command line
    assert len(epoch_lines(logs / 'val.log')) == 1


def test_a_runs_config_json_starts_the_same_run_anew(workdir, data_args):
    assert run(data_args + ['--n_epoch', 2, '--lr', 3e-3, '--loggers_dir', 'loggers/a', '--checkpoints_dir',
                            'checkpoints/a']) == 0
    config_json = json.loads((workdir / 'loggers' / 'a' / 'config.json').read_text())
    assert config_json['lr'] == 3e-3 and 'loggers_dir' not in config_json  # a new run gets folders of its own
    assert run(['--config', 'loggers/a/config.json', '--loggers_dir', 'loggers/b', '--checkpoints_dir',
                'checkpoints/b']) == 0  # no other option: the file holds the data and model settings too
    assert json.loads((workdir / 'loggers' / 'b' / 'config.json').read_text()) == config_json
    first, again = (load(workdir / 'checkpoints' / run_name / 'latest_checkpoint.pt') for run_name in 'ab')
    assert all(torch.equal(first['model'][key], again['model'][key]) for key in first['model'])
    assert epoch_lines(workdir / 'loggers' / 'a' / 'val.log') == epoch_lines(workdir / 'loggers' / 'b' / 'val.log')


TRAILING_COMMA = '{"lr": 0.1,}'


def json_error(text):
    """Python's own message for this broken JSON (its wording changed in 3.13)."""
    try:
        json.loads(text)
    except json.JSONDecodeError as err:
        return str(err)
    raise AssertionError(f'{text} is valid JSON')


def test_a_runs_folder_given_to_config_names_its_config_json(workdir, data_args):
    assert run(data_args + ['--n_epoch', 1, '--run_name', 'a']) == 0
    before = snapshot(workdir)
    with pytest.raises(RunError, match=re.escape("cannot read --config 'loggers/a' (Is a directory); pass --config "
                                                 'loggers/a/config.json')):
        train.main(['--config', 'loggers/a'])
    assert snapshot(workdir) == before


@pytest.mark.parametrize('text, message', [
    (None, "cannot read --config 'experiment.json' (No such file or directory)"),
    (TRAILING_COMMA, f"--config 'experiment.json' is not valid JSON ({json_error(TRAILING_COMMA)}); fix the file"),
    ('[["lr", 0.1]]', "--config 'experiment.json' must hold one JSON object of \"key\": value pairs; it holds a list"),
    ('{"learning_rate": 0.1}', "--config 'experiment.json': unknown key 'learning_rate'; python train.py --help"),
    ('{"n_epochs": 5}', "--config 'experiment.json': unknown key 'n_epochs'; did you mean 'n_epoch'?"),
    ('{"run_name": "exp1"}', "--config 'experiment.json': 'run_name' is not a config key but an option of the "
                             'command line; remove it from the file and pass --run_name to train.py'),
    ('{"resume": "exp1"}', "--config 'experiment.json': 'resume' is not a config key but an option of the command"),
    ('{"device": "cuda:1"}', "--config 'experiment.json': 'device' is not a config key: train.py takes cuda, then "
                             'mps, then cpu (3.2); CUDA_VISIBLE_DEVICES= python train.py trains on the CPU, '
                             'CUDA_VISIBLE_DEVICES=1 on GPU 1, and torchrun on several'),
    ('{"n_epoch": 2.5}', "--config 'experiment.json': n_epoch must be a whole number, got 2.5"),
    ('{"n_epoch": true}', "--config 'experiment.json': n_epoch must be a whole number, got true"),
    ('{"clip_flag": "false"}', "--config 'experiment.json': clip_flag must be true or false, got \"false\""),
    ('{"lr": "1e-3"}', "--config 'experiment.json': lr must be a number, got \"1e-3\""),
    ('{"amp": null}', "--config 'experiment.json': amp must be a string, got null"),
    ('{"lr": -1}', 'lr must be positive, got -1.0'),  # and then the checks every value gets
    ('{"weight_decay": Infinity}', 'weight_decay must be a finite number, got inf'),  # Python's json reads it
    ('{"amp": ""}', "--config 'experiment.json': amp is empty; give it a value, or remove it for its default 'none'"),
])
def test_bad_config_files_fail_clearly_before_anything_is_written(workdir, text, message):
    if text is not None:
        (workdir / 'experiment.json').write_text(text)
    with pytest.raises(RunError, match=re.escape(message)):
        train.main(['--config', 'experiment.json'])
    assert not (workdir / 'loggers').exists() and not (workdir / 'checkpoints').exists()


def test_derived_seeds_past_numpys_limit_wrap_around():
    # seed + rank + 1000 * step (a long run resumed with another world size) can pass 2**32 - 1
    all_seed(2**32 + 7)
    draws = torch.rand(3), random.random()
    all_seed(7)
    assert torch.equal(torch.rand(3), draws[0]) and random.random() == draws[1]


def test_help_lists_every_key_with_its_default():
    help_text, left = help_of('train.py')
    for key in ('seed', 'n_epoch', 'batch_size', 'lr', 'weight_decay', 'early_stop', 'warmup_steps', 'resume'):
        assert f'--{key}' in help_text
    text = ' '.join(help_text.split())  # argparse wraps long help lines
    assert '(default: 6666)' in text and '(default: 0.0001)' in text
    assert left == []  # no loggers/ or checkpoints/


def test_unknown_key_exits_2_with_one_line(tmp_path):
    result = subprocess.run([sys.executable, str(PROJECT / 'train.py'), '--lrr', '1'], capture_output=True,
                            text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith('error: unknown option --lrr; did you mean --lr? valid keys:')
    assert '--lr,' in result.stderr


def test_clipping_and_scheduler_can_be_switched_off(workdir, data_args):
    assert run(data_args + ['--n_epoch', 1, '--clip_flag', 'false', '--scheduler_flag', 'false', '--lr', 2e-3]) == 0
    logs, _ = only_run(workdir)
    assert epoch_lines(logs / 'train.log')[0].endswith('lr 2.0000e-03')


def test_weight_decay_shrinks_weight_matrices_but_not_biases_or_norms(workdir, data_args):
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.AdamW(optimizer_groups(model, 0.5), lr=0.1)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # Adam's step is then 0: only the decay moves a parameter
    optimizer.step()
    for name, p in model.named_parameters():
        assert torch.allclose(p, before[name] * (1 - 0.1 * 0.5) if p.ndim >= 2 else before[name]), name
    # a run's optimizer: the weights of the project's model in the decaying group, its biases and norms in the other
    assert run(data_args + ['--n_epoch', 1, '--weight_decay', 0.01]) == 0
    _, ckpts = only_run(workdir)
    checkpoint = load(ckpts / 'latest_checkpoint.pt')
    params = list(build_model(checkpoint['config']).parameters())
    groups = checkpoint['optimizer']['param_groups']
    assert [group['weight_decay'] for group in groups] == [0.01, 0.0]
    assert [len(group['params']) for group in groups] == [sum(p.ndim >= 2 for p in params),
                                                          sum(p.ndim < 2 for p in params)]
    assert len(groups[1]['params']) > 0


def test_a_warmup_longer_than_the_run_is_a_warning(workdir, data_args):
    assert run(data_args + ['--n_epoch', 1, '--warmup_steps', 1000]) == 0
    logs, _ = only_run(workdir)
    steps = int(epoch_lines(logs / 'train.log')[0].split()[3])
    assert (f"warning: warmup_steps 1000 is more than this run's {steps} optimizer steps, so the learning rate "
            'never reaches lr 0.0001; pass a smaller --warmup_steps') in (logs / 'train.log').read_text()
    for folder in (logs, workdir / 'checkpoints' / logs.name):  # so that only_run() finds the next run
        shutil.rmtree(folder)
    assert run(data_args + ['--n_epoch', 1, '--warmup_steps', steps]) == 0  # the last step reaches lr: no warning
    logs, _ = only_run(workdir)
    assert 'warning' not in (logs / 'train.log').read_text()


{% if cookiecutter.task == 'classification' and cookiecutter.dataset != 'image_folder' -%}
def test_labels_that_stop_short_of_num_classes_are_a_warning(workdir, data_args):
    # the usual cause: num_classes kept at the template's answer while the data has fewer classes
    labels = {{ '160' if cookiecutter.dataset == 'synthetic' else "TEST_DATA_CONFIG['num_classes']" }}  # labels 0..labels-1
    assert run(data_args + ['--n_epoch', 1, '--num_classes', labels + 3]) == 0
    logs, _ = only_run(workdir)
    assert (f'warning: the labels go up to {labels - 1}, but num_classes is {labels + 3}, so outputs {labels}..'
            f'{labels + 2} are never a right answer; pass --num_classes {labels}, unless those classes are only '
            'missing from this data') in (logs / 'train.log').read_text()
    assert run(data_args + ['--n_epoch', 1, '--num_classes', labels]) == 0
    assert not any('the labels go up to' in (p / 'train.log').read_text() for p in (workdir / 'loggers').iterdir()
                   if p != logs)


{% endif -%}
def test_warmup_then_cosine_schedule():
    from utils import warmup_cosine

    multiplier = warmup_cosine(10, 110)
    assert multiplier(0) == pytest.approx(0.1) and multiplier(9) == pytest.approx(1.0)
    assert multiplier(60) == pytest.approx(0.5) and multiplier(110) == pytest.approx(0.0)
{%- if cookiecutter.task == 'classification' %}


def test_balanced_class_weights_count_the_training_split_and_average_1_over_it():
    labels = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)  # class 3 has no sample
    dataset = torch.utils.data.TensorDataset(torch.zeros(100, 1), labels)
    dataset.targets = labels
    split = Subset(dataset, list(range(0, 100, 2)) + [1])  # 31 of class 0, 15 of 1, 5 of 2
    weights = balanced_class_weights(torch.utils.data.DataLoader(split), num_classes=4)
    assert torch.allclose(weights, torch.tensor([51 / (3 * 31), 51 / (3 * 15), 51 / (3 * 5), 1.0]))
    assert torch.isclose(weights[labels[split.indices]].mean(), torch.tensor(1.0))  # the loss keeps its scale
    # a dataset of your own without a targets tensor: every training sample's label is read instead
    del dataset.targets
    assert torch.equal(balanced_class_weights(torch.utils.data.DataLoader(split), num_classes=4), weights)


def in_parts(criterion, output, target, parts=(slice(0, 3), slice(3, 12))):
    """The criterion over the batch's parts, each scaled by its share of the samples, as train() adds micro-batches."""
    return sum(criterion(output[part], target[part]) * (part.stop - part.start) / len(target) for part in parts)


def test_the_class_weighted_loss_is_the_weighted_mean_over_samples_and_splits_into_micro_batches():
    output, target = torch.randn(12, 3, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 0] * 3)
    weight = torch.tensor([0.5, 2.0, 4.0])
    per_sample = nn.functional.cross_entropy(output, target, reduction='none')
    loss = ClassWeightedCrossEntropy(weight)
    assert torch.isclose(loss(output, target), (weight[target] * per_sample).mean())
    unweighted = nn.CrossEntropyLoss()(output, target)
    assert torch.isclose(ClassWeightedCrossEntropy(torch.ones(3))(output, target), unweighted)
    # micro-batches add up to the whole batch (grad_accum_steps, DDP); with nn.CrossEntropyLoss(weight=...), which
    # divides each by its own sum of weights (6.5 for the first 3 samples here, 14.5 for the other 9), they do not
    torch_loss = nn.CrossEntropyLoss(weight=weight)
    assert torch.isclose(in_parts(loss, output, target), loss(output, target))
    assert not torch.isclose(in_parts(torch_loss, output, target), torch_loss(output, target), rtol=1e-2)
    assert loss(output.double(), target).dtype == torch.float64 and loss(output.bfloat16(), target).isfinite()


def class_0_common(build_datasets):
    """build_datasets (train.py's) keeping every class-0 training sample and a quarter of the others: class 0 is
    several times as common as any other class in training. Validation keeps every class."""
    def build(config):
        train_set, valid_set = build_datasets(config)
        targets = training_targets(train_set, None).tolist()
        kept = [index for k, (index, target) in enumerate(zip(train_set.indices, targets)) if target == 0 or k % 4 == 0]
        return Subset(train_set.dataset, kept), valid_set

    return build


class PriorModel(nn.Module):
    """Learns only how often each class comes, whatever the input: its answer is the class prior it is trained to."""

    def __init__(self, config):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(config['num_classes']))

    def forward(self, x, *rest):
        return self.bias.expand(x.shape[0], -1)


def valid_probabilities(checkpoint):
    """The checkpoint's model's softmax over the validation split, and the split's targets."""
    model = PriorModel(checkpoint['config'])
    load_model_state(model, checkpoint['model'], 'best_checkpoint.pt')
    _, valid_set = build_datasets(checkpoint['config'])
    *inputs, target = next(iter(torch.utils.data.DataLoader(valid_set, len(valid_set), collate_fn=collate_fn)))
    with torch.no_grad():
        return model(*inputs).double().softmax(dim=1), target


def test_balanced_class_weights_weigh_training_and_validation_and_lift_the_rare_classes(workdir, data_args,
                                                                                       monkeypatch):
    monkeypatch.setattr(train, 'build_datasets', class_0_common(build_datasets))
    monkeypatch.setattr(train, 'build_model', PriorModel)
    class_0_share = {}
    for class_weights in ['none', 'balanced']:
        root = workdir / class_weights
        root.mkdir()
        monkeypatch.chdir(root)
        assert run(data_args + ['--n_epoch', 8, '--lr', 0.1, '--class_weights', class_weights]) == 0
        logs, ckpts = only_run(root)
        best = load(ckpts / 'best_checkpoint.pt')
        probabilities, target = valid_probabilities(best)
        class_0_share[class_weights] = float(valid_probabilities(load(ckpts / 'latest_checkpoint.pt'))[0][:, 0].mean())
        train_set, _ = class_0_common(build_datasets)(best['config'])
        weights = balanced_class_weights(torch.utils.data.DataLoader(train_set), TEST_DATA_CONFIG['num_classes'])
        if class_weights == 'none':
            assert 'class weights' not in (logs / 'note.log').read_text()
            weights = torch.ones_like(weights)
        else:
            assert weights[0] < weights[1:].max() / 2  # about 4 times as many samples: a quarter of the weight
            assert f'class weights (balanced): {class_weights_text(weights, classes_of(train_set))}\n' in (
                logs / 'note.log').read_text()
        # the valid loss that chose the best checkpoint is the weighted one
        expected = (weights.double()[target] * -probabilities[torch.arange(len(target)), target].log()).mean()
        assert best['best_loss'] == pytest.approx(float(expected), rel=1e-4)
    # trained plainly, the model learns that class 0 is common; balanced, that every class counts the same (the
    # last epoch's model: validation has every class as often, so the best one is one that learnt less of either)
    uniform = 1 / TEST_DATA_CONFIG['num_classes']
    assert class_0_share['none'] > 1.5 * uniform
    assert abs(class_0_share['balanced'] - uniform) < 0.5 * (class_0_share['none'] - uniform)
{%- endif %}
