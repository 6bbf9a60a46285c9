{%- set classification = cookiecutter.task == 'classification' %}
{%- if cookiecutter.dataset == 'synthetic' -%}
import subprocess
import sys

{% endif -%}
import pytest
import torch

from conftest import {{ 'PROJECT, ' if cookiecutter.dataset == 'synthetic' }}needs_forkserver
{% if cookiecutter.dataset == 'synthetic' -%}
from dataset import SyntheticDataset, build_datasets, build_predict_dataset, collate_fn, split
{%- else -%}
from dataset import DATA_CONFIG, build_datasets, build_predict_dataset, collate_fn, make_example, split
{%- endif %}
from runfiles import RunError
from utils import StopSafeDataLoader


@pytest.fixture
def datasets(config, data_args):
    args = dict(zip(data_args[::2], data_args[1::2]))
    config = {**config, **{k[2:]: type(config[k[2:]])(v) for k, v in args.items() if k[2:] in config}}
    return build_datasets(config), config


def test_items_have_the_right_shapes_and_dtypes(datasets):
    (train_set, valid_set), config = datasets
    x, y = train_set[0]
    assert x.dtype == torch.float32
{%- if cookiecutter.model == 'transformer' %}
    assert x.dim() == 2 and x.shape[1] == config['num_features']
{%- elif cookiecutter.model == 'cnn' or cookiecutter.dataset == 'image_folder' %}
    assert x.shape == (config['image_channels'], config['image_size'], config['image_size'])
{%- else %}
    assert x.shape == (config['num_features'],)
{%- endif %}
{%- if classification %}
    assert y.dtype == torch.int64 and y.shape == () and 0 <= int(y) < config['num_classes']
{%- else %}
    assert y.dtype == torch.float32 and y.shape == (1,)
{%- endif %}


def test_split_is_seeded_disjoint_and_complete(datasets):
    (train_set, valid_set), config = datasets
    again, _ = build_datasets(config)
    assert train_set.indices == again.indices
    assert not set(train_set.indices) & set(valid_set.indices)
    assert len(train_set) + len(valid_set) == len(train_set.dataset)
    assert len(valid_set) == round(len(train_set.dataset) * config['valid_ratio'])
    other, _ = split(train_set.dataset, config['valid_ratio'], config['seed'] + 1)
    assert other.indices != train_set.indices


def test_batches_collate(datasets):
    (train_set, _), _ = datasets
    loader = torch.utils.data.DataLoader(train_set, batch_size=5, collate_fn=collate_fn)
    *inputs, target = next(iter(loader))
    assert len(target) == 5 and inputs[0].shape[0] == 5
{%- if cookiecutter.model == 'transformer' %}
    frames, padding_mask = inputs
    lengths = torch.tensor([len(train_set[i][0]) for i in range(5)])
    assert torch.equal((~padding_mask).sum(1), lengths)
{%- endif %}


@needs_forkserver
def test_the_training_data_loads_in_workers_that_forkserver_starts(datasets):
    (train_set, _), config = datasets
{%- if cookiecutter.dataset == 'synthetic' %}
    train_set, _ = build_datasets({**config, 'n_samples': 600})  # more samples than a worker takes tensors
{%- endif %}
    everything = {'batch_size': len(train_set), 'collate_fn': collate_fn}
    in_workers = StopSafeDataLoader(train_set, num_workers=1, multiprocessing_context='forkserver', **everything)
    in_process = torch.utils.data.DataLoader(train_set, **everything)
    assert all(torch.equal(a, b) for a, b in zip(next(iter(in_workers)), next(iter(in_process)), strict=True))


# sizes the thresholds below hold for, whatever this project's own (2 features of 50 classes would overlap)
TASK_SIZES = {'num_features': 32, 'num_classes': 4, 'image_channels': 3, 'image_size': 16}


def linear_fit_score(fit_on, score_on):
    """How well a least-squares linear model of `fit_on` predicts `score_on`: {{ 'accuracy' if classification else 'R squared' }}.

    High only when both hold samples of one task; near {{ 'chance (1 / num_classes)' if classification else '0' }} for two unrelated tasks.
    """
    def features_and_targets(dataset):
        inputs, targets = zip(*(dataset[i] for i in range(len(dataset))))
{%- if cookiecutter.model == 'transformer' %}
        x = torch.stack([frames.mean(0) for frames in inputs])
{%- elif cookiecutter.model == 'cnn' or cookiecutter.dataset == 'image_folder' %}
        x = torch.nn.functional.adaptive_avg_pool2d(torch.stack(inputs), 4).flatten(1)
{%- else %}
        x = torch.stack(inputs)
{%- endif %}
        return torch.cat([x, torch.ones(len(x), 1)], 1), torch.stack(targets)

    x, y = features_and_targets(fit_on)
{%- if classification %}
    weights = torch.linalg.lstsq(x, torch.nn.functional.one_hot(y).float()).solution
    x, y = features_and_targets(score_on)
    return ((x @ weights).argmax(1) == y).float().mean().item()
{%- else %}
    weights = torch.linalg.lstsq(x, y).solution
    x, y = features_and_targets(score_on)
    return 1 - ((x @ weights - y) ** 2).mean().item() / y.var().item()
{%- endif %}


{% if cookiecutter.dataset == 'synthetic' -%}
def test_more_samples_and_samples_to_predict_on_come_from_the_task_trained_on(config):
    config = {**config, **TASK_SIZES}
    trained_on = SyntheticDataset(config, 400)
    more = SyntheticDataset(config, 1000)  # --n_samples 1000
    to_predict = build_predict_dataset(config, n_samples=300)  # predict.py: fresh samples, another seed
    assert not torch.equal(more[0][0], trained_on[0][0]) and not torch.equal(to_predict[0][0], trained_on[0][0])
    assert linear_fit_score(trained_on, more) > {{ 0.7 if classification else 0.5 }}
    assert linear_fit_score(trained_on, to_predict) > {{ 0.7 if classification else 0.5 }}
{%- else -%}
def test_example_data_of_another_size_or_seed_comes_from_the_same_task(tmp_path, config):
    config = {**config, **TASK_SIZES}
    make_example(tmp_path / 'data', {**DATA_CONFIG, **TASK_SIZES}, n_samples=400)
    make_example(tmp_path / 'new_data', {**DATA_CONFIG, **TASK_SIZES}, n_samples=300, seed=1)  # --make-example --seed 1
    trained_on = build_predict_dataset(config, tmp_path / 'data')
    to_predict = build_predict_dataset(config, tmp_path / 'new_data', classes=trained_on.classes)
    assert linear_fit_score(trained_on, to_predict) > {{ 0.7 if classification else 0.5 }}
{%- endif %}


def test_too_few_samples_for_a_split_is_a_clear_error(datasets):
    (train_set, _), _ = datasets
    with pytest.raises(RunError, match='too few'):
        split(torch.utils.data.Subset(train_set, [0]), 0.2, 0)
{%- if cookiecutter.model == 'cnn' or cookiecutter.dataset == 'image_folder' %}


def test_augment_mirrors_or_keeps_each_image_and_shifts_it_by_at_most_shift_pixels():
    from dataset import augment

    images = torch.randn(64, 3, 8, 8)
    torch.manual_seed(0)
    assert augment(images, False, 0) is images  # nothing asked: the batch as it is
    flipped = augment(images, True, 0)
    kept, mirrored = ((flipped == expected).flatten(1).all(1) for expected in (images, images.flip(3)))
    assert (kept | mirrored).all() and 16 < int(mirrored.sum()) < 48  # each image one or the other; about half mirrored
    shift = 2
    shifted = augment(images, False, shift)
    padded = torch.nn.functional.pad(images, (shift,) * 4, mode='reflect')
    offsets = []
    for image, source in zip(shifted, padded):  # each image is a window of its reflect-padded self
        offsets += [(top, left) for top in range(2 * shift + 1) for left in range(2 * shift + 1)
                    if torch.equal(image, source[:, top:top + 8, left:left + 8])]
    assert len(offsets) == len(images) and len(set(offsets)) > 15  # one each, drawn per image (25 possible)
    assert augment(images, True, shift).shape == images.shape


def test_augment_draws_from_the_torch_rng_and_keeps_the_memory_format():
    from dataset import augment

    images = torch.randn(16, 3, 8, 8).contiguous(memory_format=torch.channels_last)  # the CNN's on CUDA
    torch.manual_seed(1)
    first = augment(images, True, 3)
    torch.manual_seed(1)
    assert torch.equal(augment(images, True, 3), first)  # the run's seed (and a checkpoint's RNG state) decide it
    assert not torch.equal(augment(images, True, 3), first)
    assert first.is_contiguous(memory_format=torch.channels_last)
    assert augment(images.contiguous(), True, 3).is_contiguous()
{%- endif %}
{%- if cookiecutter.dataset == 'synthetic' and cookiecutter.model == 'cnn' %}


def test_upsample_matches_bilinear_interpolation():
    from dataset import upsample

    images = torch.randn(5, 3, 4, 4)
    expected = torch.nn.functional.interpolate(images, size=(32, 32), mode='bilinear', align_corners=False)
    torch.testing.assert_close(upsample(images, 32), expected)
{%- endif %}
{%- if cookiecutter.dataset == 'synthetic' %}


def test_dataset_py_as_a_command_says_there_is_no_example_to_write(tmp_path):
    result = subprocess.run([sys.executable, str(PROJECT / 'dataset.py'), '--make-example', 'data'], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith('error: the synthetic reader needs no files') and result.stderr.count('\n') == 1
    assert not any(tmp_path.iterdir())
{%- endif %}
