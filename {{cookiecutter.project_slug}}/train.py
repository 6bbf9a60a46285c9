{%- set scales_data = cookiecutter.dataset in ['csv', 'sequence', 'image_folder'] or cookiecutter.task == 'regression' -%}
{%- set images = cookiecutter.model == 'cnn' or cookiecutter.dataset == 'image_folder' -%}
"""Train the model.

    python train.py                                  # defaults below
    python train.py --lr 3e-4 --warmup_steps 100     # override any config key
    python train.py --resume 20260101_120000         # continue that run exactly
    python train.py --run_name exp1                  # a run in loggers/exp1; the same command continues it

Sections: 1 imports, 2 train(), 3 start training (3.1 timestamp ... 3.11 train()).
"""

# -----------------------------------------------------------------------------
# 1. imports
import contextlib
import logging
import math
import os
import time

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.optim.lr_scheduler import LambdaLR
from torchinfo import Units, summary
from tqdm import tqdm

from dataset import DATA_CONFIG, SPLIT_KEYS, {{ 'augment, ' if images else '' }}build_datasets, check_data_config, collate_fn
from model import MODEL_CONFIG, SHAPE_KEYS, build_model, check_model_config
from plot import save_curves
from runfiles import METRIC_NAME, RunError, first_line, one_line_errors, to_stdout
from utils import (
    CHECKPOINT_FORMAT_VERSION,
    EMPTY_TOTALS,
    AgreementPace,
    CheckpointWriter,
{%- if cookiecutter.task == 'classification' %}
    ClassWeightedCrossEntropy,
{%- endif %}
    DataFingerprint,
    DataWait,
    DataWaitHint,
    EpochMeter,
    EpochSampler,
    Interrupted,
    MetricsFile,
    SaveTimer,
    ShardSampler,
    StallWatch,
    StepTaken,
    StopRequest,
    StopSafeDataLoader,
    agree_across_ranks,
    all_reduce_numbers,
    all_seed,
    autocast_for,
{%- if cookiecutter.task == 'classification' %}
    balanced_class_weights,
{%- endif %}
    bar_options,
    branch_reason,
    broadcast,
    carry_best,
    check_compile,
    check_config,
    check_data_still_there,
    check_device_config,
    check_feature_order,
{%- if cookiecutter.task == 'classification' %}
    check_label_range,
{%- endif %}
    check_new_run_dirs,
    check_not_running,
    check_one_sample,
    check_resume_overrides,
    check_same_data,
    check_writable,
    checkpoint_position,
    claim_run_dirs,
{%- if cookiecutter.task == 'classification' %}
    class_weights_text,
{%- endif %}
    classes_of,
    copy_metrics,
    create_logger,
    data_warnings,
    epochs_text,
    error_fix,
    errors_to_torchrun,
    exit_on_stop,
    exit_process,
    failure_noted,
    feature_columns_of,
{%- if scales_data %}
    fit_scaling,
{%- endif %}
    gather_from_ranks,
    get_rng_state,
    is_distributed,
    is_master,
    keep_crash_tracebacks,
    keep_ddp_wrapper,
    keep_later_best,
    kept_starts,
{%- if cookiecutter.task == 'classification' %}
    labels_warning,
{%- endif %}
    load_checkpoint,
    load_init_state,
    load_init_weights,
    load_model_state,
    log_rank_error,
    model_memory_errors,
    named_run,
    nothing_to_train,
    on_error,
    open_tensorboard,
    optimizer_groups,
    own_epoch_totals,
    parse_args,
    provenance_text,
    resolve_checkpoint,
    resume_command,
    samples_text,
    set_aside,
    set_determinism,
    set_rng_state,
    setup_device,
    show_crash_stacks,
    slurm_tasks_warning,
    start_heartbeat,
    to_device,
    unused_parameters_warning,
    unwrap,
    warmup_cosine,
    write_config_file,
    write_traceback,
)

NONFINITE_EXIT_CODE = 3


# -----------------------------------------------------------------------------
# 2. train()
def train(train_loader, valid_loader, model, config, device, checkpoint=None):
    """Run the epochs; return the process exit code (0 finished or early-stopped, 3 NaN/Inf, 130/143 signal).

    `checkpoint` (from --resume) restores the optimizer, scheduler, counters and RNG state, so the
    run continues exactly where it stopped, mid-epoch included.
    """
    train_logger, val_logger, note_logger = (logging.getLogger(name) for name in ('train', 'val', 'note'))
    raw_model = unwrap(model)  # saved without DDP's and torch.compile's prefixes: loads either way
    is_ddp = isinstance(model, DDP)
    eval_model = model.module if is_ddp else model  # validation needs no DDP collectives
    rank, world_size = (dist.get_rank(), dist.get_world_size()) if is_distributed() else (0, 1)
    best_path = os.path.join(config['checkpoints_dir'], 'best_checkpoint.pt')
    latest_path = os.path.join(config['checkpoints_dir'], 'latest_checkpoint.pt')
    resume_cmd = resume_command(config['checkpoints_dir'], world_size=world_size)
    resume = f'resume with: {resume_cmd}'
    # a full disk: rows wait, training goes on
    metrics = MetricsFile(os.path.join(config['loggers_dir'], 'metrics.csv'))
    tensorboard = None  # loggers stay silent off rank 0; tensorboard and metrics.csv are rank 0's too
    if config['tensorboard'] and is_master():
        *example_inputs, _ = next(iter(valid_loader))
        first_epoch = checkpoint['epoch'] + 1 if checkpoint else 1
        tensorboard = open_tensorboard(os.path.join(config['loggers_dir'], 'tb'), raw_model,
                                       [x.to(device) for x in example_inputs], first_epoch)

    # loss, optimizer, scheduler (stepped once per optimizer step)
{%- if cookiecutter.task == 'classification' %}
    criterion = nn.CrossEntropyLoss()
    if config['class_weights'] == 'balanced':  # counted on the training split, so the same again on resume
        class_weights = balanced_class_weights(train_loader, config['num_classes'])
        criterion = ClassWeightedCrossEntropy(class_weights.to(device))
        classes = classes_of(train_loader.dataset)
        note_logger.info(f'class weights (balanced): {class_weights_text(class_weights, classes)}')
{%- else %}
    criterion = nn.MSELoss()
{%- endif %}
    optimizer = torch.optim.AdamW(optimizer_groups(model, config['weight_decay'], checkpoint), lr=config['lr'])
    n_train = train_loader.sampler.num_samples  # this rank's share of an epoch
    accum = config['grad_accum_steps']  # micro-batches per optimizer step
    steps_per_epoch = math.ceil(n_train / (config['batch_size'] * accum))
    total_steps = config['n_epoch'] * steps_per_epoch
    schedule = warmup_cosine(config['warmup_steps'], total_steps) if config['scheduler_flag'] else (lambda step: 1.0)
    if config['scheduler_flag'] and config['warmup_steps'] > total_steps:  # a short run with the default warmup
        train_logger.info(f"warning: warmup_steps {config['warmup_steps']} is more than this run's {total_steps} "
                          f"optimizer steps, so the learning rate never reaches lr {config['lr']:g}; "
                          'pass a smaller --warmup_steps')
{%- if cookiecutter.task == 'classification' %}
    labels_note = labels_warning(train_loader.dataset, config['num_classes'])
    if labels_note:
        train_logger.info(labels_note)
{%- endif %}
    scheduler = LambdaLR(optimizer, schedule)
    step_taken = StepTaken(optimizer)  # fp16 steps that GradScaler skips do not advance the schedule
    autocast = autocast_for(config['amp'], device)
    no_op = contextlib.nullcontext()
    scaler = torch.amp.GradScaler(device.type, enabled=config['amp'] == 'fp16')
{%- if cookiecutter.model == 'cnn' %}
    memory_format = torch.channels_last if config['channels_last'] and device.type == 'cuda' else torch.preserve_format
{%- else %}
    memory_format = torch.preserve_format
{%- endif %}
{%- if images %}
    augmenting = config['random_flip'] or config['random_shift'] > 0  # training batches only (dataset.augment)
{%- endif %}

    # values to track
    start_epoch, step, samples_done, epoch_totals = 0, 0, 0, EMPTY_TOTALS
    # a stopped epoch's seconds, wait for batches and seconds of training so far: its metrics.csv row counts them
    seconds_done = (0.0, 0.0, 0.0)
    best_loss, best_epoch, early_stop_count = math.inf, 0, 0
    if checkpoint is not None:
        optimizer.load_state_dict(checkpoint['optimizer'])
        scheduler.load_state_dict(checkpoint['scheduler'])
        scheduler.base_lrs = [config['lr']] * len(optimizer.param_groups)  # a --lr override wins
        optimizer.param_groups[0]['weight_decay'] = config['weight_decay']  # as does a --weight_decay one
        start_epoch, step, samples_done = checkpoint['epoch'], checkpoint['step'], checkpoint['samples_done']
        epoch_totals = own_epoch_totals(checkpoint['epoch_totals'], rank, world_size)
        seconds_done = tuple(checkpoint.get('seconds_done', seconds_done))  # none in checkpoints from before it
        seconds_done += seconds_done[:1] * (3 - len(seconds_done))  # older: two, the epoch's for the training's
        best_loss, best_epoch = checkpoint['best_loss'], checkpoint['best_epoch']
        early_stop_count = checkpoint['early_stop_count']
        if checkpoint['scaler']:  # empty when saved without fp16; the scaler then starts fresh
            scaler.load_state_dict(checkpoint['scaler'])
        if len(checkpoint['rng']) == world_size:
            set_rng_state(checkpoint['rng'][rank])
        else:  # another number of processes: exactness is lost, so continue from fresh, distinct seeds
            all_seed(config['seed'] + rank + 1000 * step)
            per_step = config['batch_size'] * accum
            samples_done = samples_done * len(checkpoint['rng']) // world_size // per_step * per_step

    def epoch_seconds_so_far():
        """A stopped epoch's seconds_done: its seconds, its wait for batches and its training's seconds so far."""
        now = time.perf_counter()
        return now - epoch_start, data_wait.seconds, now - train_start if train_seconds is None else train_seconds

    def state(epoch, samples_done, epoch_totals):
        """Everything needed to continue exactly from this point, as plain values (weights_only loads it)."""
        return {
            'format_version': CHECKPOINT_FORMAT_VERSION,
            'model': raw_model.state_dict(),
            'optimizer': optimizer.state_dict(),
            'scheduler': scheduler.state_dict(),
            'scaler': scaler.state_dict(),
            'epoch': epoch,  # epochs completed
            'step': step,  # optimizer steps taken
            'samples_done': samples_done,  # samples of epoch `epoch` already trained on (mid-epoch stop)
            'epoch_totals': gather_from_ranks(list(epoch_totals)),  # each rank's running sums of this epoch
            'seconds_done': epoch_seconds_so_far() if samples_done else (0.0, 0.0, 0.0),
            'best_loss': best_loss,
            'best_epoch': best_epoch,
            'early_stop_count': early_stop_count,
            'config': config,
            'rng': gather_from_ranks(get_rng_state()),  # one entry per rank (a collective: every rank builds the state)
            'sampler': {'seed': config['seed'], 'epoch': epoch, 'start': samples_done},
            'world_size': world_size,
            'data': data.value(),  # waits for the inputs' hash (a thread)
            'classes': classes_of(train_loader.dataset),  # label names, for predict.py
            'feature_columns': feature_columns_of(train_loader.dataset),  # predict.py takes them by name, in any order
        }

    def save(paths, epoch, samples_done, epoch_totals):
        """Every rank builds the state (a collective: RNG states and sums); rank 0 writes it in the background."""
        checkpoint_state = state(epoch, samples_done, epoch_totals)
        if is_master():
            writer.save(checkpoint_state, *paths)
        if latest_path in paths:
            save_timer.reset()

    def save_steps_done():
        """After an error mid-epoch, save the work up to the last whole optimizer step; return where the
        error came ('' or ' in validation'), or None when nothing was saved.

        In training, between steps (an error inside a step may have changed part of it), and in validation,
        where the epoch's training is kept and resume validates again. Not in the checkpoint step, and not
        under DDP: the other ranks wait in a collective and the save needs them."""
        if world_size > 1 or step == first_step:
            return None
        try:
            if trained_totals is not None:
                point, where = (n_train, trained_totals), ' in validation'
            elif samples_at_last_step == samples_done and meter.flush() is None:  # no NaN: the weights are sound
                point, where = (samples_done, meter.totals()), ''
            else:
                return None
            save([latest_path], epoch, *point)
            writer.wait()
        except Exception as err:  # the device may be unusable after the error: keep the earlier checkpoint
            train_logger.info(f'after the error, could not save {latest_path}: {err}')
            return None
        return where

    def save_after_error(err):
        """An error mid-epoch (a bad batch, out of memory) keeps the steps done; the error goes on. Errors it
        knows name their fix (error_fix: out of memory, the smaller batches to go on with).

        After Ctrl-C or SIGTERM, an error is the signal's doing: the terminal (or batch system) signals the
        whole process group, and a child process that dies of it (torch.compile's C++ compiler, say) fails
        the step. The run then ends as interrupted, in one line: returns the Interrupted to raise instead."""
        where = save_steps_done()
        if stop.requested:
            writer.wait()
            kept = (f'saved {latest_path} at step {step}; {resume}' if where is not None else
                    f'{resume} (from its last save)' if os.path.exists(latest_path) else 'nothing saved to resume from')
            if is_master():  # should the error be a bug of its own, nothing of it is lost
                details = write_traceback(err, config['loggers_dir'])
                train_logger.info(f'interrupted by {stop.name} at epoch {epoch + 1}, which also stopped a child '
                                  f'process ({type(err).__name__}: {first_line(err)}{details}); {kept}')
            finish(f'interrupted ({stop.name})', stop.exit_code)
            return Interrupted(stop.exit_code)
        resumable = where is not None or os.path.exists(latest_path)
        if not is_master():  # rank 0 then fails in a collective ("closed by peer"): the cause is this rank's
            log_rank_error(err, rank, epoch, config, resume_cmd if resumable else None)
            return None
        fix = error_fix(err, config, resume_cmd if resumable else None)
        if where is not None:
            train_logger.info(f'error at epoch {epoch + 1}{where}: saved {latest_path} at step {step}; '
                              f"{fix or f'fix the cause, then {resume}'}")
        elif fix:  # nothing new saved: the run goes on from its last save, if any
            train_logger.info(f'error at epoch {epoch + 1}: {fix}')
        return None

    def finish(status, exit_code):
        """Close metrics.csv, record how the run ended (runs.py reads it), close tensorboard, return the exit code."""
        metrics.close()  # rows still waiting for room get one more try
        note_logger.info(f"status: {status} at {time.strftime('%Y-%m-%d %H:%M:%S')}, {epochs_text(epoch_done)} done, "
                         f'step {step}')  # a stop mid-way through epoch 7 is "6 epochs done"
        if tensorboard is not None:
            tensorboard.close()
        return exit_code

    epoch_done, first_step, samples_at_last_step, trained_totals = start_epoch, step, None, None
    validation_seconds = 0.0  # the last validation's length: a timed save due before the next one ends comes first
    data_hint = DataWaitHint(config['num_workers'], train_logger)  # once a start, when the loops wait for batches
    save_timer = SaveTimer(config['save_minutes'])  # a hard kill (SIGKILL, power) loses at most this much training
    pace = AgreementPace(world_size, config['log_interval'])  # DDP: the ranks hear of a stop within seconds
    patience = config['early_stop'] or math.inf  # early_stop 0: off
    nothing_left = nothing_to_train(checkpoint, config)
    if nothing_left:  # main() stops before this; train() called on its own does not
        train_logger.info(nothing_left)
        return finish('early-stopped' if early_stop_count >= patience else 'finished', 0)

    with (StopRequest() as stop, contextlib.closing(CheckpointWriter()) as writer,
          StallWatch(config['stall_minutes']) as stall_watch, on_error(save_after_error)):
        # what resume checks the data against; inputs held in memory are hashed on a thread as the first epoch trains
        data = DataFingerprint(train_loader.dataset, valid_loader.dataset)
        for epoch in range(start_epoch, config['n_epoch']):
            # 2.1 training
            epoch_start = time.perf_counter() - seconds_done[0]
            train_start, train_seconds = time.perf_counter() - seconds_done[2], None  # the training part (2.1) only
            model.train()
            training_logged = samples_done == n_train  # resumed after an error in this epoch's validation
            train_loader.sampler.set_epoch(epoch, start=samples_done)
            meter = EpochMeter(config['log_interval'], epoch_totals, on_read=stall_watch.on_read)
            pace.start(step)
            samples_at_last_step = samples_done  # an error between steps saves up to here (save_after_error)
            data_wait = DataWait(train_loader, seconds_done[1])  # how long the loops wait for batches (metrics.csv)
            bar = tqdm(data_wait, desc=f"epoch {epoch + 1}/{config['n_epoch']} train", leave=False,
                       initial=math.ceil(samples_done / config['batch_size']),
                       total=math.ceil(n_train / config['batch_size']), disable=not is_master(), **bar_options())
            bad_step, stopping, micro, read_due = None, False, 0, False
            for batch in bar:
                *inputs, target = to_device(batch, device, memory_format)
{%- if images %}
                if augmenting:
                    inputs[0] = augment(inputs[0], config['random_flip'], config['random_shift'])
{%- endif %}
                n = target.shape[0]
                if micro == 0:  # samples in this optimizer step: the loss is their mean, however split
                    group = min(config['batch_size'] * accum, n_train - samples_done)
                last_micro = micro + 1 == accum or samples_done + n >= n_train
                # DDP averages gradients over the ranks only on an optimizer step's last micro-batch
                with model.no_sync() if is_ddp and not last_micro else no_op:
                    with autocast:
                        output = model(*inputs)
                        loss = criterion(output, target)
                    scaler.scale(loss if n == group else loss * (n / group)).backward()
                read_due |= meter.add(step + 1, loss.detach(), output.detach(), target)
                samples_done += n
                micro += 1
                if not last_micro:
                    continue
                micro = 0
                if config['clip_flag']:
                    scaler.unscale_(optimizer)
                    meter.add_grad_norm(nn.utils.clip_grad_norm_(model.parameters(), config['clip_max_norm']))
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                if step_taken():
                    scheduler.step()
                step += 1
                samples_at_last_step = samples_done
                if read_due or pace.due(step):  # DDP: also after a few seconds of slow steps
                    bad_step, read_due = meter.flush(), False  # the one host sync per log_interval batches
                    bar.set_postfix_str(f'loss {meter.loss:.4f} {METRIC_NAME} {meter.metric:.4f}', refresh=False)
                    data_hint.during(epoch + 1, data_wait)
                    save_due = save_timer.due()
                    stopping, bad_step, save_due = agree_across_ranks(stop, bad_step, save_due, device, pace, step)
                    if save_due and bad_step is None and not stopping and samples_done < n_train:
                        save([latest_path], epoch, samples_done, meter.totals())  # mid-epoch, in the background
                        train_logger.info(f'saved {latest_path} at epoch {epoch + 1} step {step} ({samples_done} of '
                                          f'{samples_text(n_train, world_size)}; '
                                          f"save_minutes {config['save_minutes']:g})")
                elif world_size == 1:
                    stopping = stop.requested
                if bad_step is not None or stopping:
                    break
            samples_at_last_step = None
            bar.close()
            train_seconds = time.perf_counter() - train_start
            bad_step = meter.flush() if bad_step is None else bad_step
            save_due = save_timer.due(ahead=validation_seconds)
            stopping, bad_step, save_due = agree_across_ranks(stop, bad_step, save_due, device)
            if bad_step is not None:
                train_logger.info(f'failed: loss is NaN or Inf at epoch {epoch + 1} step {bad_step}; stopped without '
                                  'saving (best_checkpoint.pt is untouched). Try a lower --lr or --clip_flag true')
                return finish('failed (NaN or Inf loss)', NONFINITE_EXIT_CODE)
            if stopping and samples_done < n_train:
                save([latest_path], epoch, samples_done, meter.totals())
                writer.wait()
                train_logger.info(f'interrupted by {stop.name} at epoch {epoch + 1} step {step}; '
                                  f'saved {latest_path}; {resume}')
                return finish(f'interrupted ({stop.name})', stop.exit_code)
            samples_done, epoch_totals, seconds_done = 0, EMPTY_TOTALS, (0.0, 0.0, 0.0)
            trained_totals = meter.totals()  # this rank's; until validation ends, a save keeps the epoch's training
            meter.all_reduce(device)

            # 2.2 training log
            lr = optimizer.param_groups[0]['lr']
            train_loss, train_metric = meter.loss, meter.metric
            grad_norm = meter.grad_norm if config['clip_flag'] else None  # the mean before clipping, which measures it
            if not training_logged:
                norm_text = '' if grad_norm is None else f' grad_norm {grad_norm:.6f}'
                train_logger.info(f'epoch {epoch + 1} step {step} loss {train_loss:.6f} '
                                  f'{METRIC_NAME} {train_metric:.6f} lr {lr:.4e}{norm_text}')
            if save_due:  # before validation: a hard kill during a long one would lose the training since the last save
                save([latest_path], epoch, n_train, trained_totals)
                train_logger.info(f'saved {latest_path} at epoch {epoch + 1} step {step} (before validation; '
                                  f"save_minutes {config['save_minutes']:g})")

            # 2.3 validation; Ctrl-C or SIGTERM stops it at once (a batch job's grace period may be shorter than
            # validation) and saves the epoch's training, which resume validates again
            validation_start = time.monotonic()
            model.eval()
            validation_stopped = False
            with torch.inference_mode(), autocast:
                meter = EpochMeter(config['log_interval'], on_read=stall_watch.on_read)
                valid_wait = DataWait(valid_loader)
                for batch in tqdm(valid_wait, desc=f'epoch {epoch + 1} valid', leave=False, disable=not is_master(),
                                  **bar_options()):
                    if stop.requested:
                        validation_stopped = True
                        break
                    *inputs, target = to_device(batch, device, memory_format)
                    output = eval_model(*inputs)
                    if meter.add(step, criterion(output, target), output, target):
                        meter.flush()
                meter.flush()
            _, _, validation_stopped = agree_across_ranks(stop, None, validation_stopped, device)
            if validation_stopped:
                save([latest_path], epoch, n_train, trained_totals)
                writer.wait()
                train_logger.info(f'interrupted by {stop.name} at epoch {epoch + 1} in validation; saved {latest_path} '
                                  f'at step {step} (the epoch trained; resume validates it again); {resume}')
                return finish(f'interrupted ({stop.name})', stop.exit_code)
            meter.all_reduce(device)  # every rank now holds the loss over the whole valid set
            # the slowest rank's: a rank that waits for its data holds up the others in the next collective
            data_seconds, waited_after_first, slowest_train_seconds = all_reduce_numbers(
                [data_wait.seconds + valid_wait.seconds, data_wait.waited_after_first + valid_wait.waited_after_first,
                 train_seconds], device, op='max')
            valid_loss, trained_totals = meter.loss, None
            validation_seconds = time.monotonic() - validation_start

            # 2.4 validation log
            val_logger.info(f'epoch {epoch + 1} step {step} loss {valid_loss:.6f} '
                            f'{METRIC_NAME} {meter.metric:.6f} lr {lr:.4e}')
            if not math.isfinite(valid_loss):
                val_logger.info(f'failed: validation loss is NaN or Inf at epoch {epoch + 1}; stopped without saving')
                return finish('failed (NaN or Inf valid loss)', NONFINITE_EXIT_CODE)
            epoch_done = epoch + 1
            row = {'epoch': epoch + 1, 'step': step, 'train_loss': train_loss, 'train_metric': train_metric,
                   'valid_loss': valid_loss, 'valid_metric': meter.metric, 'lr': lr,
                   'epoch_seconds': round(time.perf_counter() - epoch_start, 3), 'grad_norm': grad_norm,
                   'data_seconds': round(data_seconds, 3), 'train_seconds': round(slowest_train_seconds, 3)}
            if is_master():
                metrics.append(row)
            if tensorboard is not None:
                tensorboard.add(row)
            data_hint.after_epoch(epoch + 1, waited_after_first, data_wait, valid_wait)

            # 2.5 checkpoint strategy: best on valid loss, latest every save_every epochs (or save_minutes), early stop
            # a signal that came after validation's last batch stops the run here; the save timer may have fallen due
            stopping, _, save_due = agree_across_ranks(stop, None, save_timer.due(), device)
            improved = valid_loss < best_loss
            if improved:
                best_loss, best_epoch, early_stop_count = valid_loss, epoch + 1, 0
            else:
                early_stop_count += 1
            early_stopped = early_stop_count >= patience
            last_epoch = epoch + 1 == config['n_epoch']
            save_latest = (epoch + 1) % config['save_every'] == 0 or last_epoch or early_stopped or stopping or save_due
            paths = [best_path] * improved + [latest_path] * save_latest
            if paths:  # written in the background while the next epoch trains
                save(paths, epoch + 1, 0, epoch_totals)
            if improved:
                val_logger.info(f'saved best_checkpoint.pt (valid loss {best_loss:.6f} at epoch {best_epoch})')
            if early_stopped:
                writer.wait()
                val_logger.info(f"early stop: valid loss has not improved for {epochs_text(config['early_stop'])} "
                                f'(best {best_loss:.6f} at epoch {best_epoch})')
                return finish('early-stopped', 0)
            if stopping and not last_epoch:  # after the last epoch the run is over: it finishes as usual
                writer.wait()
                train_logger.info(f'interrupted by {stop.name} after epoch {epoch + 1} step {step}; '
                                  f'saved {latest_path}; {resume}')
                return finish(f'interrupted ({stop.name})', stop.exit_code)

        writer.wait()
        val_logger.info(f"finished {epochs_text(config['n_epoch'])} "
                        f'(best valid loss {best_loss:.6f} at epoch {best_epoch})')
        return finish('finished', 0)


# -----------------------------------------------------------------------------
# 3. start training
@failure_noted()  # an error before 3.10 removes the new run's empty folders; after it, it is note.log's last status
def main(argv=None):
    # 3.1 timestamp
    timestamp = time.strftime('%Y%m%d_%H%M%S')

    # 3.2 device: cuda, then mps, then cpu; under torchrun, DDP with one process per device.
    # Never stored in config, so a checkpoint resumes on any device and any number of processes.
    device, rank, world_size = setup_device()
    timestamp = broadcast(timestamp)  # rank 0's: one run folder for all ranks

    # 3.3 config: every key can be overridden as --<key> <value>
    config = {
        'seed': 6666,  # Python, NumPy and torch RNGs, the train/valid split and the shuffle order
        'n_epoch': 250,  # epochs to train
        'batch_size': 128,  # samples per step, per process under DDP
        'lr': 1e-4,  # AdamW learning rate (the peak, after warmup)
        'weight_decay': 5e-4,  # AdamW weight decay of weight matrices and kernels (not biases or norms)
        'early_stop': 50,  # stop after this many epochs without a lower valid loss (0: off)
        'num_workers': 0,  # DataLoader worker processes (persistent when > 0)
        'clip_flag': True,  # clip the gradient norm to clip_max_norm
        'clip_max_norm': 1.0,  # the largest gradient norm, with clip_flag
        'scheduler_flag': True,  # linear warmup, then cosine decay
        'warmup_steps': 1000,  # optimizer steps of linear warmup, with scheduler_flag
        'save_every': 5,  # epochs between latest_checkpoint.pt saves
        'save_minutes': 30.0,  # also save latest_checkpoint.pt once it is this many minutes old, mid-epoch (0: off)
        'stall_minutes': 30.0,  # no batch read this long: each thread's stack into traceback.txt, a warning (0: off)
        'log_interval': 20,  # batches between reads of the running loss (and progress bar updates)
        'grad_accum_steps': 1,  # micro-batches of batch_size per optimizer step
        'amp': 'none',  # 'none', 'bf16' autocast (CPU, CUDA) or 'fp16' (CUDA, with a GradScaler)
        'compile': False,  # torch.compile the model
        'deterministic': False,  # True: deterministic algorithms, no cudnn.benchmark (slower on GPU)
        'matmul_precision': 'highest',  # float32 matmuls: 'high' lets CUDA use TF32 (faster, less exact), 'medium' bf16
        'tensorboard': False,  # also write scalars and the model graph to loggers/<timestamp>/tb
        'init_from': '',  # a new run starts from these weights: a run's timestamp (its best checkpoint) or a file
        'init_partial': False,  # with init_from: load the tensors whose name and shape fit, start the rest fresh
{%- if cookiecutter.task == 'classification' %}
        'class_weights': 'none',  # 'balanced': every class adds as much to the loss, however few its samples
{%- endif %}
{%- if cookiecutter.model == 'cnn' %}
        'channels_last': False,  # channels-last memory format on CUDA (faster convolutions with amp)
{%- endif %}
        **DATA_CONFIG,
        **MODEL_CONFIG,
        'loggers_dir': f'./loggers/{timestamp}',  # this run's logs
        'checkpoints_dir': f'./checkpoints/{timestamp}',  # this run's checkpoints
    }
    overrides, resume, run_name = parse_args(config, argv)
    unsaved_start = None  # how a --run_name run's earlier start ended, when it saved no checkpoint
    if run_name:  # the first time a new run, then a resume of it: a requeued job repeats the same command
        resume, unsaved_start = broadcast(named_run(run_name, overrides) if is_master() else None)
        config['loggers_dir'], config['checkpoints_dir'] = f'./loggers/{run_name}', f'./checkpoints/{run_name}'
        if resume:
            overrides.pop('init_from', None)  # they applied when the run started
            overrides.pop('init_partial', None)
    checkpoint, branched_from, branched_because = None, None, None
    if resume:
        checkpoint_path = resolve_checkpoint(resume)
        checkpoint = load_checkpoint(checkpoint_path)
        saved = {**config, **checkpoint['config']}  # a key newer than the run takes its default
        check_resume_overrides(overrides, saved, SHAPE_KEYS, SPLIT_KEYS, run_name)
        run_dirs = ('loggers_dir', 'checkpoints_dir')
        new_run_dirs = [overrides.get(key, config[key]) for key in run_dirs]
        config = {**saved, **overrides, 'loggers_dir': saved['loggers_dir'],
                  'checkpoints_dir': str(checkpoint_path.parent)}
        # a checkpoint behind its run's latest one (best_checkpoint.pt, say), or away from its run's
        # folders, goes on exactly as a new run, so that nothing of the source run is overwritten
        branched_because = broadcast(branch_reason(checkpoint_path, checkpoint, config['loggers_dir'])
                                     if is_master() else None)
        if branched_because and run_name:  # each requeue would branch from the same checkpoint again
            raise RunError(f'run {run_name} cannot go on in its own folders: {branched_because}; continue it '
                           f'once as a new run with --resume {checkpoint_path}')
        if branched_because:
            branched_from = config['loggers_dir']
            config['loggers_dir'], config['checkpoints_dir'] = new_run_dirs
        elif any(key in overrides for key in run_dirs):
            raise RunError("--loggers_dir and --checkpoints_dir place a new run; a resume goes on in its run's own "
                           'folders, so drop them')
    else:
        config.update(overrides)
    check_config(config)
    check_data_config(config)
    check_model_config(config)
    check_device_config(config, device)
    nothing_left = nothing_to_train(checkpoint, config)
    if nothing_left:  # a requeued job whose run is done, say: exit 0, write nothing
        if is_master():
            to_stdout(nothing_left)
        return 0
    if checkpoint is not None:  # data moved: say so before 3.5 writes, naming --dataset_dir (the reader at 3.6 cannot)
        check_data_still_there(config, overrides)
{%- if scales_data %}
    init, init_note, init_fresh = None, '', []  # init_fresh: the model's tensors that init_from leaves fresh
{%- else %}
    init, init_note = None, ''
{%- endif %}
    if checkpoint is None and config['init_from']:
        config['init_from'], init = load_init_weights(config['init_from'], config, SHAPE_KEYS)

    # 3.4 seed (and determinism); rank r seeds with seed + r (dropout differs per rank, data split does not)
    all_seed(config['seed'] + rank)
    set_determinism(config['deterministic'])
    torch.set_float32_matmul_precision('highest')  # for the data (3.8 sets the run's), whatever an earlier main() left

    # 3.5 makedirs (rank 0): a new run or a branch gets fresh folders; resume continues in the run's own
    if checkpoint is None or branched_from:
        check_new_run_dirs(config['loggers_dir'], config['checkpoints_dir'])  # on every rank, before rank 0 makes them
        run_dirs, restarted = None, []
        if is_master():  # a --run_name run takes its name or stops: a requeue must find it there
            if run_name:  # its starts that saved no checkpoint are kept aside: any set aside before, then the last
                restarted.append(kept_starts(config['loggers_dir'], config['checkpoints_dir']))
                if unsaved_start:
                    restarted.append(set_aside(config['loggers_dir'], config['checkpoints_dir'], unsaved_start))
            run_dirs = claim_run_dirs(config['loggers_dir'], config['checkpoints_dir'], run_name=run_name)
        config['loggers_dir'], config['checkpoints_dir'] = broadcast(run_dirs)
    elif is_master():
        check_writable(config['loggers_dir'], config['checkpoints_dir'])
        check_not_running(config['loggers_dir'])
    if is_master():  # until main() ends: a start elsewhere (another host, say) can tell this run is being written
        start_heartbeat(config['loggers_dir'])

    # 3.6 dataset
    train_set, valid_set = build_datasets(config)
{%- if cookiecutter.task == 'classification' %}
    check_label_range(train_set, valid_set, config['num_classes'])  # a label the loss cannot take fails mid-run
{%- endif %}

    # 3.7 dataloader: a plain DataLoader whose workers leave a Ctrl-C or SIGTERM (it reaches them too) to this process
    loader_args = {'batch_size': config['batch_size'], 'num_workers': config['num_workers'], 'collate_fn': collate_fn,
                   'pin_memory': device.type == 'cuda', 'persistent_workers': config['num_workers'] > 0}
    train_loader = StopSafeDataLoader(train_set, sampler=EpochSampler(train_set, config['seed'], rank, world_size),
                                      generator=torch.Generator().manual_seed(config['seed']), **loader_args)
    valid_loader = StopSafeDataLoader(valid_set, sampler=ShardSampler(len(valid_set), rank, world_size),
                                      generator=torch.Generator().manual_seed(config['seed']), **loader_args)

    # 3.8 model, run on one sample first: an output or target the loss does not expect trains wrongly,
    # and parameters the output does not depend on never train (DDP has to be told of them).
    # The matmul precision is set after 3.6, so that the data is made the same whatever it is (resume checks it)
    torch.set_float32_matmul_precision(config['matmul_precision'])
    with model_memory_errors(SHAPE_KEYS):  # a typo'd size: one line, not the allocator's traceback
        model = build_model(config).to(device)
    unused_parameters = check_one_sample(model, valid_loader, device, config, len(train_loader.sampler))
{%- if cookiecutter.model == 'cnn' %}
    if config['channels_last'] and device.type == 'cuda':
        model = model.to(memory_format=torch.channels_last)
{%- endif %}
    if config['compile']:
        check_compile(device)  # no compiler, say: one line now, not a traceback at the first step
        model = torch.compile(model)
    if is_distributed():
        model = DDP(model, device_ids=[device.index] if device.type == 'cuda' else None,
                    find_unused_parameters=bool(unused_parameters))  # without it, DDP fails at the second step
        keep_ddp_wrapper(model)  # freed as main() returns, it can deadlock with gloo's threads (torch 2.3)

    # 3.9 resume: load the weights (train() restores the rest), on the data the run started with;
    # a new run with --init_from starts from another run's weights instead
    if checkpoint is not None:  # weights first: the data check's advice (--init_from) needs weights that fit
        load_model_state(unwrap(model), checkpoint['model'], checkpoint_path)
        check_same_data(checkpoint, train_set, valid_set, checkpoint_path)
{%- if cookiecutter.task == 'classification' %}
    elif init is not None:  # another num_classes or label set: the output layer starts fresh or follows the names
{%- else %}
    elif init is not None:  # with --init_partial, the tensors that do not fit the model start fresh
{%- endif %}
        check_feature_order(init['feature_columns'], train_set, config['init_from'])
{%- if cookiecutter.task == 'classification' %}
        init_note, {{ 'init_fresh' if scales_data else '_' }} = load_init_state(unwrap(model), init, config, classes_of(train_set), build_model)
{%- else %}
        init_note, {{ 'init_fresh' if scales_data else '_' }} = load_init_state(unwrap(model), init, config)
{%- endif %}
{%- if scales_data %}
    # a new model's scaling: the training split's mean and std (resume and --init_from loaded theirs just above,
    # but for a part that --init_partial leaves fresh)
    scaling_warning = fit_scaling(unwrap(model), train_set, collate_fn,
                                  fit=checkpoint is None and (init is None or init_fresh),
                                  num_workers=config['num_workers'])
{%- endif %}

    # 3.10 loggers (rank 0 only): note.log holds the model, its summary, every hyperparameter and the data's size
    if is_master():
        create_logger('train', os.path.join(config['loggers_dir'], 'train.log'), show_time=True)
        create_logger('val', os.path.join(config['loggers_dir'], 'val.log'), show_time=True)
        note_logger = create_logger('note', os.path.join(config['loggers_dir'], 'note.log'), show_time=False)
        keep_crash_tracebacks(config['loggers_dir'])  # a crash in native code: each thread's stack in traceback.txt
        if checkpoint is None or branched_from:
            *example_inputs, _ = next(iter(valid_loader))  # the summary runs one sample: shapes show batch 1
            model_summary = summary(unwrap(model), input_data=[x[:1].to(device) for x in example_inputs], mode='eval',
                                    verbose=0, device=device, col_names=('input_size', 'output_size', 'num_params'))
            model_summary.formatting.macs_units = Units.NONE  # a count: torchinfo 1.8 misnames millions Units.MEGABYTES
            note_logger.info(f"run {os.path.basename(config['loggers_dir'])} on {device} x {world_size}"
                             f'\n\n{unwrap(model)}\n\n{model_summary}\n')
            for line in filter(None, restarted):
                note_logger.info(line)
            note_logger.info('config:\n' + '\n'.join(f'    {key}: {value}' for key, value in config.items()))
            note_logger.info(f'data:\n    train_samples: {len(train_set)}\n    valid_samples: {len(valid_set)}')
            write_config_file(config, os.path.join(config['loggers_dir'], 'config.json'))  # --config starts it anew
            note_logger.info(provenance_text(device, world_size))
            if init_note:
                note_logger.info(init_note)
            if branched_from:  # metrics.csv and best_checkpoint.pt start with the history this run continues
                copy_metrics(os.path.join(branched_from, 'metrics.csv'),
                             os.path.join(config['loggers_dir'], 'metrics.csv'), checkpoint['epoch'])
                best_epoch = carry_best(checkpoint_path, checkpoint, config)
                position = checkpoint_position(checkpoint)
                note_logger.info(f'branched from {checkpoint_path} {position}: {branched_because}, '
                                 'so this run goes on in folders of its own and leaves that run as it was'
                                 + (f'; best_checkpoint.pt starts as its epoch {best_epoch}' if best_epoch else ''))
        else:
            note_logger.info(f"\nresumed at {time.strftime('%Y-%m-%d %H:%M:%S')} on {device} x {world_size} from "
                             f'{checkpoint_path} {checkpoint_position(checkpoint)}')
            changed = {k: v for k, v in overrides.items() if v != checkpoint['config'].get(k)}  # a requeue repeats them
            note_logger.info('overrides: ' + (', '.join(f'{k}={v}' for k, v in changed.items()) or 'none'))
            kept_best = keep_later_best(checkpoint_path, checkpoint)  # saved by epochs that are trained again
            if kept_best:
                note_logger.info(f'best_checkpoint.pt was saved after this checkpoint; kept as {kept_best.name}')
            note_logger.info(provenance_text(device, world_size))
        if checkpoint is not None:  # the epoch lines go on from here; after a kill, some epochs come twice
            for name in ('train', 'val'):
                logging.getLogger(name).info(f"{'branched' if branched_from else 'resumed'} from {checkpoint_path} "
                                             f'{checkpoint_position(checkpoint)}')
        note_logger.info('status: running')
        if unused_parameters:
            logging.getLogger('train').info(unused_parameters_warning(unused_parameters, is_distributed()))
        slurm_tasks = slurm_tasks_warning()  # srun started copies of this command: each is a run of its own
        if slurm_tasks:
            logging.getLogger('train').info(slurm_tasks)
{%- if scales_data %}
        if scaling_warning:
            logging.getLogger('train').info(scaling_warning)
{%- endif %}
        if checkpoint is None:  # dataset.py's warnings on the data; a resumed run cannot change it
            for line in data_warnings(train_set):
                logging.getLogger('train').info(line)

    # 3.11 train(), then the curves (rank 0): loggers/<timestamp>/curves.png
    exit_code = train(train_loader, valid_loader, model, config, device, checkpoint)
    if is_master():
        logging.getLogger('train').info(save_curves(config['loggers_dir']))
    if is_distributed():
        dist.barrier()  # the other ranks wait for rank 0's curves: one leaving gloo early can abort the run
        dist.destroy_process_group()
    return exit_code


if __name__ == '__main__':
    show_crash_stacks()  # a crash in native code (a segfault) shows each thread's Python stack (3.10 on: traceback.txt)
    with one_line_errors(), exit_on_stop(), errors_to_torchrun():
        exit_code = main()
    exit_process(exit_code)  # under torchrun with os._exit: a gloo thread left running can abort Python's shutdown
