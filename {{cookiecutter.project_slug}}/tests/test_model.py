import torch

from dataset import collate_fn, synthetic_samples
from model import SHAPE_KEYS, build_model


def example_batch(config, n=4):
    inputs, targets = synthetic_samples(config, n, seed=0)
    samples = list(zip(inputs, targets))
    if collate_fn is None:
        return torch.utils.data.default_collate(samples)
    return collate_fn(samples)


def test_forward_gives_one_output_per_sample_of_the_answered_size(config):
    model = build_model(config)
    *inputs, target = example_batch(config)
    output = model(*inputs)
{%- if cookiecutter.task == 'classification' %}
    assert output.shape == (4, config['num_classes'])
{%- else %}
    assert output.shape == (4, 1) == target.shape
{%- endif %}
    assert torch.isfinite(output).all()


def test_every_parameter_gets_a_gradient(config):
    model = build_model(config)
    *inputs, _ = example_batch(config)
    model(*inputs).sum().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert not missing


def test_shape_keys_are_config_keys(config):
    assert set(SHAPE_KEYS) <= set(config)
{%- if cookiecutter.dataset == 'csv' %}


def test_the_units_of_the_columns_do_not_change_what_the_model_computes(config):
    # fitted to the training samples, the model standardizes each feature{{ ' and the target' if cookiecutter.task == 'regression' else '' }} itself
    g = torch.Generator().manual_seed(0)
    inputs = torch.randn(64, config['num_features'], generator=g)
    inputs[:, 0] = 2.0  # a constant column
{%- if cookiecutter.task == 'regression' %}
    targets = torch.randn(64, 1, generator=g)
{%- else %}
    targets = torch.randint(0, config['num_classes'], (64,), generator=g)
{%- endif %}
    units = torch.logspace(-3, 4, config['num_features'])  # millimetres beside kilometres
    models = []
    for scale in (torch.ones_like(units), units):
        torch.manual_seed(0)
        models.append(build_model(config).eval())
{%- if cookiecutter.task == 'regression' %}
        models[-1].fit_scaling((inputs + 3) * scale, (targets + 5) * scale[-1])  # the target in units too
    plain, in_units = models
    with torch.no_grad():
        expected = plain(inputs + 3) * units[-1]
        output = in_units((inputs + 3) * units)
{%- else %}
        models[-1].fit_scaling((inputs + 3) * scale, targets)
    plain, in_units = models
    with torch.no_grad():
        expected = plain(inputs + 3)
        output = in_units((inputs + 3) * units)
{%- endif %}
    assert torch.isfinite(expected).all()
    assert torch.allclose(output, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))
{%- endif %}
{%- if cookiecutter.model == 'transformer' %}


def test_padding_does_not_change_the_output(config):
    model = build_model(config).eval()
    frames = torch.randn(1, 10, config['num_features'])
    padded = torch.cat([frames, torch.zeros(1, 6, config['num_features'])], dim=1)
    with torch.no_grad():
        short = model(frames, torch.zeros(1, 10, dtype=torch.bool))
        long = model(padded, torch.arange(16).unsqueeze(0) >= 10)
    torch.testing.assert_close(short, long, rtol=1e-4, atol=1e-5)
{%- endif %}
