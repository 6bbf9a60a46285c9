{%- set kind = 'sequence' if cookiecutter.model == 'transformer' else ('image' if cookiecutter.model == 'cnn' or cookiecutter.dataset == 'image_folder' else 'vector') -%}
"""Speed settings: gradient accumulation, AMP, torch.compile checkpoints, determinism, batched fetch,
and the running sums that are read once per log_interval."""

import functools
import math
import re
import sys

import pytest
import torch
from torch import nn

import train
from conftest import PROJECT{{ ', TEST_DATA_CONFIG' if cookiecutter.task == 'classification' or kind == 'image' }}, epoch_lines, load, only_run, run, run_in
from runfiles import RunError
from test_resume import EXACT, assert_same_weights
from utils import EpochMeter, metric_per_sample, set_determinism, to_device, unwrap
{%- if kind == 'image' %}

IN_FEATURES = TEST_DATA_CONFIG['image_channels'] * TEST_DATA_CONFIG['image_size'] ** 2
{%- else %}

IN_FEATURES = train.DATA_CONFIG['num_features']
{%- endif %}
OUTPUTS = {{ "TEST_DATA_CONFIG['num_classes']" if cookiecutter.task == 'classification' else '1' }}


class TinyModel(nn.Module):
    """No dropout and no batch norm: how a batch is split into micro-batches cannot change its gradient."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(IN_FEATURES, OUTPUTS)

    def forward(self, x, padding_mask=None):
        if padding_mask is not None:  # mean over the real frames
            keep = (~padding_mask).unsqueeze(-1).float()
            x = (x * keep).sum(1) / keep.sum(1)
        return self.linear(x.flatten(1))


@pytest.mark.parametrize('extra', [[]{{ ", ['--class_weights', 'balanced']" if cookiecutter.task == 'classification' }}])
def test_grad_accumulation_matches_one_big_batch(workdir, data_args, monkeypatch, extra):
    # 128 training samples: 5 steps of 24 and a last, partial step of 8, either way
    monkeypatch.setattr(train, 'build_model', lambda config: TinyModel())
    common = data_args + ['--n_epoch', 2, '--lr', 1e-2, '--warmup_steps', 3] + extra
    big, big_lines, _ = run_in(workdir / 'big', common + ['--batch_size', 24, '--grad_accum_steps', 1])
    accum, accum_lines, _ = run_in(workdir / 'accum', common + ['--batch_size', 8, '--grad_accum_steps', 3])
    assert big['step'] == accum['step'] == 12
    # Summing in another order moves a weight by up to ~1e-6 (1.2e-6 on an AVX-512 CPU, whose kernels
    # round differently; 1.2e-5 with class weights, which scale the rounding); a wrongly scaled micro-batch
    # loss moves the weights by ~1e-2, and class weights normalized per micro-batch by ~7e-3
    for key in big['model']:
        torch.testing.assert_close(accum['model'][key], big['model'][key], rtol=1e-4, atol=5e-5)
    # the same steps and learning rates are logged; the losses agree to the last printed digit (1e-6), and so do
    # the gradient norms of the optimizer steps, to summation order (a micro-batch's own norm would be ~3x off)
    big_fields, accum_fields = ([line.split() for line in lines] for lines in (big_lines, accum_lines))
    assert [(f[3], f[8:10]) for f in big_fields] == [(f[3], f[8:10]) for f in accum_fields]
    for a, b in zip(big_fields, accum_fields):
        assert float(a[5]) == pytest.approx(float(b[5]), rel=1e-4, abs=2e-6)
        assert a[10] == 'grad_norm' and float(a[11]) == pytest.approx(float(b[11]), rel=1e-5)


def test_amp_bf16_trains_on_cpu_and_the_scaler_state_is_saved(workdir, data_args):
    assert run(data_args + ['--n_epoch', 1, '--amp', 'bf16']) == 0
    logs, ckpts = only_run(workdir)
    loss = float(epoch_lines(logs / 'train.log')[0].split()[5])
    assert loss == loss and loss < 1e6
    assert 'scaler' in load(ckpts / 'latest_checkpoint.pt')
    # nn.Transformer*'s inference fast path ignores CPU autocast and, in torch 2.3-2.5, fails validation
    assert not torch.backends.mha.get_fastpath_enabled()


def fp16_on_this_cpu(monkeypatch):
    """train.py allows fp16 only on CUDA; lift that check, so that the same code path runs on the CPU's fp16
    autocast and GradScaler. The scaler starts far too high, so that the first steps overflow and are
    skipped, and grows every 4 steps."""
    monkeypatch.setattr(train, 'check_device_config', lambda config, device: None)
    monkeypatch.setattr(torch.amp, 'GradScaler', functools.partial(torch.amp.GradScaler, init_scale=2.0 ** 24,
                                                                   growth_interval=4))
    return EXACT + ['--amp', 'fp16', '--lr', 1e-2]


# a scheduler stepped before any optimizer step (all skipped so far) makes torch warn this
@pytest.mark.filterwarnings(r'error:Detected call of `lr_scheduler.step\(\)` before `optimizer.step\(\)`')
def test_fp16_steps_that_the_scaler_skips_do_not_advance_the_schedule(workdir, data_args, monkeypatch):
    assert run(data_args + ['--n_epoch', 3, *fp16_on_this_cpu(monkeypatch)]) == 0  # 8 steps an epoch
    checkpoint = load(only_run(workdir)[1] / 'latest_checkpoint.pt')
    updates = {int(state['step']) for state in checkpoint['optimizer']['state'].values()}  # AdamW counts its steps
    assert len(updates) == 1
    updates = updates.pop()
    assert 0 < updates < checkpoint['step'], (updates, checkpoint['step'])  # some skipped, some taken
    assert checkpoint['scheduler']['last_epoch'] == updates


@pytest.mark.filterwarnings(r'error:Detected call of `lr_scheduler.step\(\)` before `optimizer.step\(\)`')
def test_fp16_resume_restores_the_grad_scaler(workdir, data_args, monkeypatch):
    """fp16's GradScaler state (scale, growth tracker) goes into the checkpoint and comes back on resume:
    its state at the stop differs from a fresh one's, and a fresh scaler would skip other steps."""
    fp16 = fp16_on_this_cpu(monkeypatch)
    straight, _, _ = run_in(workdir / 'straight', data_args + ['--n_epoch', 2, *fp16])
    assert run(data_args + ['--n_epoch', 1, *fp16]) == 0
    logs, ckpts = only_run(workdir)
    assert load(ckpts / 'latest_checkpoint.pt')['scaler']['scale'] < 2.0 ** 24  # it backed off: not a fresh state
    assert run(['--resume', logs.name, '--n_epoch', 2]) == 0
    resumed = load(ckpts / 'latest_checkpoint.pt')
    assert resumed['scaler'] == straight['scaler']
    assert_same_weights(resumed['model'], straight['model'])


@pytest.mark.skipif(torch.cuda.is_available(), reason='fp16 is allowed on CUDA')
def test_amp_fp16_without_cuda_is_a_clear_error(workdir, data_args):
    with pytest.raises(RunError, match='amp fp16 needs CUDA'):
        train.main(data_args + ['--amp', 'fp16'])
    assert not (workdir / 'loggers').exists()


def test_bad_amp_value_is_a_clear_error(workdir):
    with pytest.raises(RunError, match='amp must be none, bf16 or fp16'):
        train.main(['--amp', 'fp32'])


def test_compiled_runs_save_plain_keys_that_resume_without_compile(workdir, data_args, monkeypatch):
    compile_ = torch.compile
    monkeypatch.setattr(train.torch, 'compile', lambda model: compile_(model, backend='eager'))  # no C++ build
    assert run(data_args + ['--n_epoch', 1, '--compile', 'true']) == 0
    logs, ckpts = only_run(workdir)
    plain = set(train.build_model(load(ckpts / 'latest_checkpoint.pt')['config']).state_dict())
    assert set(load(ckpts / 'latest_checkpoint.pt')['model']) == plain
    assert run(['--resume', logs.name, '--n_epoch', 2, '--compile', 'false']) == 0
    assert load(ckpts / 'latest_checkpoint.pt')['epoch'] == 2


class InvalidCxxCompiler(Exception):
    """As torch._inductor.exc's: no C++ compiler to build the CPU's kernels with."""


def compile_that_fails(error):
    """A torch.compile whose compiled functions raise `error` when called, as the backend's failures come."""
    def compile_(function, **options):
        def compiled(*args):
            raise error
        return compiled
    return compile_


def backend_failure(cause):
    """How torch 2.3 to 2.15 wrap the backend's own error (BackendCompilerFailed's inner_exception)."""
    err = RuntimeError(f"backend='inductor' raised:\n{type(cause).__name__}: {cause}\n\nSet TORCHDYNAMO_VERBOSE=1 ...")
    err.inner_exception = cause
    return err


@pytest.mark.parametrize('error, message', [
    (backend_failure(InvalidCxxCompiler(
        "No working C++ compiler found in torch._inductor.config.cpp.cxx: (None, 'g++')")),
     "InvalidCxxCompiler: No working C++ compiler found in torch._inductor.config.cpp.cxx: (None, 'g++')); install a "
     'C++ compiler (g++ or clang), or pass --compile false'),
    (RuntimeError('Dynamo is not supported on Python 3.12+'),  # an older torch on a newer Python
     'RuntimeError: Dynamo is not supported on Python 3.12+); pass --compile false'),
], ids=['no-compiler', 'python'])
def test_a_machine_where_torch_compile_fails_is_one_line_before_anything_is_written(workdir, data_args, monkeypatch,
                                                                                    error, message):
    # before, the run started and its first step failed with the compiler's traceback
    monkeypatch.setattr(train.torch, 'compile', compile_that_fails(error))
    with pytest.raises(RunError,
                       match=re.escape(f'--compile true: torch.compile fails on this machine ({message}') + '$'):
        run(data_args + ['--n_epoch', 1, '--compile', 'true'])
    assert not (workdir / 'loggers').exists() and not (workdir / 'checkpoints').exists()


def test_unwrap_returns_the_plain_module():
    model = TinyModel()
    assert unwrap(torch.compile(model)) is model and unwrap(model) is model


def test_deterministic_switches_algorithms_and_cudnn_benchmark(workdir, data_args):
    try:
        assert run(data_args + ['--n_epoch', 1, '--deterministic', 'true']) == 0
        assert torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.benchmark
        assert run(data_args + ['--n_epoch', 1]) == 0
        assert not torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.benchmark
    finally:
        set_determinism(False)


def test_matmul_precision_holds_for_the_run_and_its_resume_and_the_data_is_made_at_full_precision(workdir, data_args,
                                                                                                    monkeypatch):
    made_at, build = [], train.build_datasets
    monkeypatch.setattr(train, 'build_datasets', lambda config: made_at.append(torch.get_float32_matmul_precision())
                        or build(config))
    try:
        assert run(data_args + ['--n_epoch', 1, '--matmul_precision', 'medium']) == 0
        logs, _ = only_run(workdir)
        assert '    matmul_precision: medium\n' in (logs / 'note.log').read_text(encoding='utf-8')
        assert run(['--resume', logs.name, '--n_epoch', 2]) == 0  # the run's own setting, not the default
        assert torch.get_float32_matmul_precision() == 'medium'
        # data made with matrix products (the CNN's synthetic images) is made before the setting applies, and at
        # 'highest' even after an earlier main() in this process set another: the same data, so resume with
        # another setting passes its data check
        assert run(['--resume', logs.name, '--n_epoch', 3, '--matmul_precision', 'highest']) == 0
        assert torch.get_float32_matmul_precision() == 'highest'
        assert made_at == ['highest'] * 3
    finally:
        torch.set_float32_matmul_precision('highest')


def test_bad_matmul_precision_is_a_clear_error(workdir):
    with pytest.raises(RunError, match="matmul_precision must be highest, high or medium, got 'tf32'"):
        train.main(['--matmul_precision', 'tf32'])
    assert not (workdir / 'loggers').exists()


HOST_READS = ('item', 'tolist', 'numpy', 'cpu', '__float__', '__int__', '__bool__', '__format__')


def host_reads_of_a_run(argv):
    """Run train.py's main(); return how many tensor-to-Python reads (a host-device sync on a GPU)
    the project's code made. dataset.py is left out: it reads CPU tensors before they go to the device."""
    reads, project = [], str(PROJECT)
    with pytest.MonkeyPatch.context() as patch:
        for name in HOST_READS:
            def read(self, *args, _original=getattr(torch.Tensor, name), _name=name, **kwargs):
                caller = sys._getframe(1).f_code.co_filename
                ours = caller.startswith(project) and 'tests' not in caller[len(project):]
                if ours and not caller.endswith('dataset.py'):
                    reads.append(_name)
                return _original(self, *args, **kwargs)
            patch.setattr(torch.Tensor, name, read)
        assert run(argv) == 0
    return len(reads)


def test_host_reads_do_not_grow_with_the_number_of_steps(workdir, data_args, monkeypatch):
    """The loop reads losses and metrics once per log_interval: never once per step."""
    monkeypatch.setattr(train, 'build_model', lambda config: TinyModel())
    once_per_epoch = ['--n_epoch', 2, '--log_interval', 1000]
    eight_steps = host_reads_of_a_run(data_args + once_per_epoch + ['--batch_size', 16])
    thirty_two_steps = host_reads_of_a_run(data_args + once_per_epoch + ['--batch_size', 4])
    assert eight_steps == thirty_two_steps > 0
    every_8 = host_reads_of_a_run(data_args + ['--n_epoch', 2, '--log_interval', 8, '--batch_size', 4])
    assert thirty_two_steps + 6 <= every_8 <= thirty_two_steps + 8  # 3 more reads per epoch of 32 steps


def test_steps_leave_no_gradients_and_validation_runs_in_inference_mode(workdir, data_args, monkeypatch):
    calls = []  # (training, inference mode, grad enabled) for each forward pass during train()

    class Recording(TinyModel):
        def forward(self, *args, **kwargs):
            calls.append((self.training, torch.is_inference_mode_enabled(), torch.is_grad_enabled()))
            return super().forward(*args, **kwargs)

    models, train_function = [], train.train
    monkeypatch.setattr(train, 'build_model', lambda config: models.append(Recording()) or models[-1])
    # 3.8 and 3.10 not counted
    monkeypatch.setattr(train, 'train', lambda *args: calls.clear() or train_function(*args))
    assert run(data_args + ['--n_epoch', 2]) == 0
    assert {c for c in calls if c[0]} == {(True, False, True)}
    assert {c for c in calls if not c[0]} == {(False, True, False)}  # validation: inference_mode
    assert all(p.grad is None for p in models[0].parameters())  # zero_grad(set_to_none=True) after each step


@pytest.mark.parametrize('num_workers', [0, 1])
def test_loaders_keep_workers_alive_and_pin_memory_only_for_cuda(workdir, data_args, monkeypatch, num_workers):
    captured = []
    monkeypatch.setattr(train, 'train', lambda *args, **kwargs: captured.append(args) or 0)
    assert run(data_args + ['--n_epoch', 1, '--num_workers', num_workers]) == 0
    for loader in captured[0][:2]:
        assert loader.num_workers == num_workers
        assert loader.persistent_workers == (num_workers > 0)
        assert loader.pin_memory == torch.cuda.is_available()


def test_batches_go_to_another_device_without_blocking_and_stay_put_on_the_cpu(monkeypatch):
    batch = [torch.randn(2, 3, 4, 4), torch.tensor([0, 1])]
    assert to_device(batch, torch.device('cpu')) is batch  # no per-step calls on the CPU
    calls = []
    to = torch.Tensor.to
    monkeypatch.setattr(torch.Tensor, 'to',
                        lambda self, *args, **kwargs: calls.append(kwargs) or to(self, *args, **kwargs))
    moved = to_device(batch, torch.device('meta'), torch.channels_last)  # 'meta' stands in for a GPU here
    assert [x.device.type for x in moved] == ['meta', 'meta']
    assert [c['non_blocking'] for c in calls] == [True, True]  # async copies from pinned memory
    assert [c['memory_format'] for c in calls] == [torch.channels_last, torch.preserve_format]  # 4-D only


def meter_batches(sizes):
    """(step, loss, output, target) for batches of these sizes, with values spread over many magnitudes."""
    generator = torch.Generator().manual_seed(0)
    batches = []
    for step, n in enumerate(sizes):
        scale = 10.0 ** torch.randint(-12, 13, (n, 1), generator=generator)
        output = torch.randn(n, OUTPUTS, generator=generator) * scale
{%- if cookiecutter.task == 'classification' %}
        target = torch.randint(0, OUTPUTS, (n,), generator=generator)
{%- else %}
        target = torch.randn(n, 1, generator=generator)
{%- endif %}
        batches.append((step, torch.rand((), generator=generator) * 3, output, target))
    return batches


def meter_totals(batches, read_after):
    meter = EpochMeter(interval=len(batches) + 1)
    for step, loss, output, target in batches:
        meter.add(step, loss, output, target)
        meter.add_grad_norm(loss / 3)  # one optimizer step per batch
        if step in read_after:
            meter.flush()
    meter.flush()
    return meter.totals()


def test_meter_totals_do_not_depend_on_when_it_is_read():
    """A run resumed mid-epoch reads at other steps than a straight run; its logged numbers must not move."""
    batches = meter_batches([16] * 9 + [5])  # the epoch's last batch is short
    straight = meter_totals(batches, read_after=set())
    for read_after in ({3}, {0, 1, 2}, set(range(10)), {4, 8}, {8}):
        assert meter_totals(batches, read_after) == straight, read_after
    loss_sum = sum(loss.item() * len(target) for _, loss, _, target in batches)
    metric_sum = sum(metric_per_sample(output, target).double().sum().item() for _, _, output, target in batches)
    assert math.isclose(straight[0], loss_sum, rel_tol=1e-9) and math.isclose(straight[1], metric_sum, rel_tol=1e-9)
    assert straight[2] == 16 * 9 + 5
    assert math.isclose(straight[3], sum((loss / 3).item() for _, loss, _, _ in batches), rel_tol=1e-9)
    assert straight[4] == len(batches)


def test_meter_mean_grad_norm_leaves_out_steps_whose_norm_overflowed():
    # fp16: GradScaler skips the step of an inf or NaN gradient; the mean is over the steps taken
    meter = EpochMeter(interval=100)
    for batch, norm in zip(meter_batches([4] * 4), [1.0, math.inf, 3.0, math.nan]):
        meter.add(*batch)
        meter.add_grad_norm(torch.tensor(norm))
        if norm == math.inf:
            meter.flush()
    assert meter.flush() is None
    assert meter.grad_norm == 2.0 and meter.totals()[3:] == [4.0, 2]
    assert math.isnan(EpochMeter(interval=1).grad_norm)  # no step with a finite norm: NaN, not 0

{%- if cookiecutter.task == 'classification' %}


def test_accuracy_counts_a_tie_for_the_first_of_the_equal_classes():
    """The meter's metric takes max's indices for speed; they must pick the class argmax picks."""
    output = torch.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0], [0.0, math.nan, 5.0], [4.0, 1.0, 4.0]])
    target = torch.tensor([1, 0, 1, 2])
    assert metric_per_sample(output, target).tolist() == [1.0, 1.0, 1.0, 0.0]
    levels = torch.randint(0, 3, (500, 10), generator=torch.Generator().manual_seed(0)).float()  # ties everywhere
    target = torch.randint(0, 10, (500,), generator=torch.Generator().manual_seed(1))
    for dtype in (torch.float32, torch.bfloat16):
        expected = (levels.to(dtype).argmax(dim=1) == target).float()
        assert torch.equal(metric_per_sample(levels.to(dtype), target), expected)
{%- endif %}


def test_meter_reports_the_first_nonfinite_step():
    batches = meter_batches([4] * 6)
    batches[3] = (3, torch.tensor(math.inf), *batches[3][2:])
    batches[5] = (5, torch.tensor(math.nan), *batches[5][2:])
    meter = EpochMeter(interval=2)
    bad_steps = [meter.flush() for step, *batch in batches if meter.add(step, *batch)]
    assert bad_steps == [None, 3, 5]
{%- if cookiecutter.dataset in ['synthetic', 'csv'] and kind != 'sequence' %}


def test_batched_fetch_gives_the_same_batch_as_item_by_item(config, data_args):
    from dataset import build_datasets, collate_fn

    args = dict(zip(data_args[::2], data_args[1::2]))
    config = {**config, **{k[2:]: type(config[k[2:]])(v) for k, v in args.items() if k[2:] in config}}
    train_set, _ = build_datasets(config)
    indices = [5, 0, 17, 3]
    batched = collate_fn(train_set.__getitems__(indices))
    one_by_one = torch.utils.data.default_collate([train_set[i] for i in indices])
    assert all(torch.equal(a, b) for a, b in zip(batched, one_by_one))
{%- endif %}
{%- if cookiecutter.model == 'cnn' %}


def test_channels_last_is_accepted_and_is_a_no_op_on_cpu(workdir, data_args):
    assert run(data_args + ['--n_epoch', 1, '--channels_last', 'true']) == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason='channels_last applies on CUDA only')
def test_channels_last_on_cuda_converts_the_weights(workdir, data_args, monkeypatch):
    models = []
    build = train.build_model
    monkeypatch.setattr(train, 'build_model', lambda config: models.append(build(config)) or models[-1])
    assert run(data_args + ['--n_epoch', 1, '--channels_last', 'true']) == 0
    conv = next(m for m in models[0].modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
{%- endif %}
