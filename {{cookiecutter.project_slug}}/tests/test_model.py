{%- set scales_features = cookiecutter.dataset in ['csv', 'sequence', 'image_folder'] -%}
import torch

from dataset import DATA_CONFIG, collate_fn, synthetic_samples
from model import SHAPE_KEYS, build_model


def example_batch(config, n=4, seed=0):
    inputs, targets = synthetic_samples(config, n, seed=seed)
    samples = list(zip(inputs, targets))
    if collate_fn is None:
        return torch.utils.data.default_collate(samples)
    return collate_fn(samples)


def test_forward_gives_one_output_per_sample_of_the_answered_size(config):
    config = {**config, **DATA_CONFIG}  # the sizes as baked (the other tests' TEST_DATA_CONFIG can be smaller)
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
{%- set real_values = 'inputs[0][~inputs[1]]' if cookiecutter.dataset == 'sequence' else 'inputs[0]' %}
{%- if cookiecutter.dataset in ['csv', 'sequence'] %}


def test_the_units_of_the_features_do_not_change_what_the_model_computes(config):
    # fitted to the training samples{{ ' (their real frames, not the padding)' if cookiecutter.dataset == 'sequence' else '' }}, the model standardizes each feature itself
    *inputs, _ = example_batch(config, n=16)
    inputs[0] = inputs[0] + 3
    inputs[0][..., 0] = 2.0  # a constant feature
    units = torch.logspace(-3, 4, config['num_features'])  # millimetres beside kilometres
    models = []
    for scale in (torch.ones_like(units), units):
        torch.manual_seed(0)
        models.append(build_model(config).eval())
        models[-1].fit_feature_scaling({{ real_values }} * scale)
    plain, in_units = models
    with torch.no_grad():
        expected, output = plain(*inputs), in_units(inputs[0] * units, *inputs[1:])
    assert torch.isfinite(expected).all()
    assert torch.allclose(output, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))
{%- elif cookiecutter.dataset == 'image_folder' %}


def test_the_pixel_levels_do_not_change_what_the_model_computes(config):
    # fitted to training images, the model standardizes each channel itself: images whose channels fill a narrow
    # band (a 12-bit camera's levels in a 16-bit file read near black) compute what full-range ones do
    images, _ = example_batch(config, n=16)
    channels = config['image_channels']
    scale = torch.logspace(-2, 0, channels).view(channels, 1, 1)
    shift = torch.linspace(-0.95, 0.5, channels).view(channels, 1, 1)
    models = []
    for fitted_to in (images, images * scale + shift):
        torch.manual_seed(0)
        models.append(build_model(config).eval())
        models[-1].fit_feature_scaling(fitted_to)
    plain, narrow = models
    with torch.no_grad():
        expected, output = plain(images), narrow(images * scale + shift)
    assert torch.isfinite(expected).all()
    assert torch.allclose(output, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))
    channel_means = (images * scale + shift).mean(dim=(0, 2, 3))
    assert torch.allclose(narrow.feature_mean.flatten(), channel_means, atol=1e-6)  # one mean per channel
{%- endif %}
{%- if cookiecutter.task == 'regression' %}


def test_the_targets_units_do_not_change_what_the_model_learns(config):
    # fitted to the training targets, the head learns them at mean 0 and std 1, and the output comes in their units:
    # targets in the tens of thousands (a price) train as well as ones near 0
    *inputs, targets = example_batch(config, n=64)
    models = []
    for scale, shift in ((1.0, 0.0), (1e4, 5e4)):
        torch.manual_seed(0)
        models.append(build_model(config).eval())
        models[-1].fit_target_scaling(targets * scale + shift)
    plain, in_units = models
    with torch.no_grad():
        expected, output = plain(*inputs) * 1e4 + 5e4, in_units(*inputs)
    assert torch.allclose(output, expected, rtol=1e-5)
    assert torch.allclose(in_units.target_mean, targets.mean(0) * 1e4 + 5e4)
    assert torch.allclose(in_units.target_std, targets.std(0, correction=0) * 1e4)
{%- endif %}
{%- if scales_features or cookiecutter.task == 'regression' %}


def test_a_checkpoint_from_before_the_scaling_loads_unscaled(config):
    # an earlier template's model had no scaling buffers and trained on raw values: its weights load with the
    # scaling at 0 and 1 (not the one train.py just fitted), so it resumes and predicts as it trained
    from utils import load_model_state

    def fitted(seed):
        torch.manual_seed(seed)
        model = build_model(config)
        *inputs, targets = example_batch(config, n=8, seed=seed)
{%- if scales_features %}
        model.fit_feature_scaling({{ real_values }} * 100 + 5)
{%- endif %}
{%- if cookiecutter.task == 'regression' %}
        model.fit_target_scaling(targets * 100 + 5)
{%- endif %}
        return model

    saved = fitted(0).state_dict()
    scaling = [key for key in saved if key in ('feature_mean', 'feature_std', 'target_mean', 'target_std')]
    assert len(scaling) == {{ 4 if scales_features and cookiecutter.task == 'regression' else 2 }}
    model = fitted(1)
    load_model_state(model, {key: value for key, value in saved.items() if key not in scaling}, 'old.pt')
    state = model.state_dict()
    assert all(torch.equal(state[key], saved[key]) for key in saved if key not in scaling)
    assert all(torch.equal(state[key], torch.full_like(saved[key], float(key.endswith('_std')))) for key in scaling)
{%- if scales_features and cookiecutter.task == 'regression' %}
    # one saved before the features were scaled, but with the targets' scaling: that loads as saved
    load_model_state(model, {key: value for key, value in saved.items() if not key.startswith('feature_')}, 'older.pt')
    state = model.state_dict()
    assert torch.equal(state['feature_mean'], torch.zeros_like(saved['feature_mean']))
    assert torch.equal(state['feature_std'], torch.ones_like(saved['feature_std']))
    assert torch.equal(state['target_mean'], saved['target_mean'])
    assert torch.equal(state['target_std'], saved['target_std'])
{%- endif %}
    load_model_state(model, saved, 'new.pt')  # one with its scaling loads it as saved
    assert all(torch.equal(value, saved[key]) for key, value in model.state_dict().items())
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
{%- if cookiecutter.dataset == 'sequence' %}


def test_the_padding_stays_0_under_the_feature_scaling(config):
    # standardized, padding would be -mean/std: with features near a million, enough to overflow float16 (AMP)
    model = build_model(config).eval()
    frames = torch.randn(2, 6, config['num_features']) + 1e6
    model.fit_feature_scaling(frames.flatten(0, 1))
    padding_mask = torch.arange(6) >= torch.tensor([[6], [3]])
    seen = []
    model.input_proj.register_forward_hook(lambda module, args, output: seen.append(args[0]))
    with torch.no_grad():
        model(frames.masked_fill(padding_mask.unsqueeze(-1), 0), padding_mask)
    assert not seen[0][padding_mask].any()
    assert seen[0][~padding_mask].abs().max() < 10
{%- endif %}
{%- endif %}
