"""A run's files as runs.py and plot.py read them (note.log, metrics.csv, .heartbeat), and what the scripts'
command lines and output files share. It imports no torch, so that runs.py and plot.py answer at once
instead of after the seconds `import torch` takes; utils.py has the rest of train.py's helpers."""

import argparse
import contextlib
import csv
import difflib
import errno
import json
import os
import re
import shlex
import socket
import sys
import time
from pathlib import Path


class RunError(Exception):
    """A problem the user can fix. train.py prints it as one line and exits with `code`."""

    def __init__(self, message, code=2):
        if message.startswith('Caught RunError in DataLoader worker'):  # a worker's, re-raised with its traceback
            message = message.rstrip().splitlines()[-1].split('RunError: ', 1)[-1]
        super().__init__(message)
        self.code = code


@contextlib.contextmanager
def one_line_errors():
    """The scripts' entry points: a RunError ends the command with its one line on stderr and its exit
    code (2, as for argparse's usage errors); any other error keeps its traceback. A name printed with a
    byte that is not UTF-8 comes out escaped (see `escaped`), where a strict console would stop the command."""
    if getattr(sys.stdout, 'errors', None) == 'strict' and hasattr(sys.stdout, 'reconfigure'):
        sys.stdout.reconfigure(errors='backslashreplace')  # a UTF-8 terminal's (the C locale writes the byte back)
    try:
        yield
    except RunError as err:
        to_stderr(f'error: {err}')
        sys.exit(err.code)


def to_stderr(line):
    """Print a line to stderr; where it cannot be written (a batch job's output file on a full disk, a closed pipe),
    the command goes on without it."""
    with contextlib.suppress(OSError):
        print(line, file=sys.stderr, flush=True)


def to_stdout(line):
    """Print a line, as the log lines print: a character the console cannot show (a run name's letters in a Windows
    code page, a file name's byte that is not UTF-8) escaped, even where train.main() is called from a script whose
    stdout would stop at it; where it cannot be written (a full disk, a closed pipe), the command goes on without it."""
    with contextlib.suppress(OSError):
        print_escaped(line)


def print_output(line):
    """Print a line of what runs.py, plot.py, predict.py and dataset.py answer, escaped as `to_stdout` prints it.
    Where the reader has gone (`python runs.py | head -3`) the rest is not wanted: the command ends as it would
    have, without a traceback; where the output cannot be written (a full disk), a one-line error."""
    try:
        print_escaped(line)
    except BrokenPipeError:
        with contextlib.suppress(OSError, ValueError):  # later lines, and the flush at exit, go nowhere
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
    except OSError as err:
        raise RunError(f'cannot write to standard output ({err.strerror}); {fix_for(err)}') from None


def print_escaped(line):
    print(escaped(line, getattr(sys.stdout, 'encoding', None) or 'utf-8'), flush=True)


def escaped(text, encoding='utf-8'):
    """`text` with what `encoding` cannot take written escaped: a file name's byte that is not UTF-8 (a surrogate in
    Python, '\\udce9'), as the log files write it, or for a console in a Windows code page torchinfo's box lines
    ('\\u251c'). What encodes strictly (a log, a figure's title, such a console) would stop at it."""
    return text.encode(encoding, 'backslashreplace').decode(encoding)


def fix_for(err):
    """What to do about a write that failed: free space on a full disk or over a quota; else fix the cause (a folder
    made read-only or removed, a file in the way)."""
    return 'free some space' if err.errno in (errno.ENOSPC, errno.EDQUOT) else 'fix that'


def first_line(err):
    """The first line of an exception's message (its type's name when it has none), for a one-line error."""
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def import_problem(err, package):
    """(why, fix) for the exception that importing `package` raised: it is not installed, or it is and fails to
    import (one built for another NumPy or protobuf, say), which a newer release of it fixes."""
    if isinstance(err, ModuleNotFoundError) and (err.name or '').split('.')[0] == package:
        return f'{package} is not installed', f'pip install {package}'
    return f'{package} fails to import ({first_line(err)})', f'pip install --upgrade {package}'


PROJECT_FOLDER = Path(__file__).resolve().parent


def project_folder_note(*paths):
    """For relative paths missing here that the project's folder holds (a script started from another folder,
    `python my_project/train.py`): a note that says so, to add to the error; else ''."""
    here = Path.cwd().resolve()
    found = [PROJECT_FOLDER / path for path in paths
             if not Path(path).is_absolute() and (PROJECT_FOLDER / path).exists()]
    if here == PROJECT_FOLDER or not found:
        return ''
    return f" (paths are relative to the folder you are in, {here}; '{found[0]}' exists: cd {PROJECT_FOLDER} first)"


def empty_value(name, leave_out=None):
    """The error for `name` given as '' ("$RUN" of an unset shell variable), never taken for the current folder;
    `leave_out` ends the advice to leave an optional name out (' for a new run', say)."""
    return RunError(f'{name} is empty (an unset shell variable?); give it a value'
                    + ('' if leave_out is None else f', or leave {name} out{leave_out}'))


class CommandParser(argparse.ArgumentParser):
    """argparse whose usage errors (unknown option, bad value, missing argument) are a RunError, so that
    one_line_errors prints them as every other bad input: one `error:` line, exit code 2. A misspelt option
    is answered with the one it resembles, and an empty value (an unset shell variable) is refused. A bare
    word where an option belongs (`python predict.py RUN`) is answered with the option `word_option(word)`
    guesses it is for (None: no guess), and an option named as a positional argument (`plot.py --run RUN`)
    with the command without it."""

    def __init__(self, *args, word_option=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.word_option = word_option

    def add_argument(self, *names, **kwargs):
        action = super().add_argument(*names, **kwargs)
        self.arguments = [*getattr(self, 'arguments', []), action]
        return action

    @property
    def long_options(self):
        return [name for action in self.arguments for name in action.option_strings if name.startswith('--')]

    def parse_args(self, args=None, namespace=None):
        # before argparse, whose "required" error would otherwise hide that the required option was misspelt
        args, options = sys.argv[1:] if args is None else list(args), self.long_options
        positional = next((action for action in self.arguments if not action.option_strings), None)
        for arg in args[:args.index('--')] if '--' in args else args:
            name = arg.partition('=')[0]
            if name.startswith('--') and not any(option.startswith(name) for option in options):
                if positional and name[2:].rstrip('s') == positional.dest:  # the command, with the option left out
                    fixed = [arg.partition('=')[2] if arg.startswith(f'{name}=') else arg for arg in args
                             if arg != name]
                    raise RunError(f'unknown option {name}; {self.prog} takes {positional.dest}s without it: '
                                   + shlex.join(['python', self.prog, *fixed]))
                close = difflib.get_close_matches(name[2:], [option[2:] for option in options], n=1)
                raise RunError(f'unknown option {name}; ' + (f'did you mean --{close[0]}? ' if close else '')
                               + f'python {self.prog} --help lists the options')
        if positional is None:
            self.check_no_bare_word(args)
        parsed = super().parse_args(args, namespace)
        for action in self.arguments:
            value = getattr(parsed, action.dest, None)
            if value == '' or (isinstance(value, list) and '' in value):
                if not action.option_strings or action.required:
                    raise empty_value(action.option_strings[-1] if action.option_strings else f'a {action.dest}')
                raise empty_value(action.option_strings[-1], leave_out='')
        return parsed

    def check_no_bare_word(self, args):
        """Refuse the first argument that is neither an option nor an option's value, naming the option that
        `word_option` guesses it is for. An unknown option before it is left to the caller's error."""
        takes_value, after_separator = False, False
        for arg in args:
            if arg == '--' and not after_separator:  # every argument after it is a bare word
                after_separator = True
            elif takes_value:
                takes_value = False
            elif arg.startswith('-') and not after_separator:
                actions = [action for action in self.arguments for option in action.option_strings
                           if option.startswith(arg.partition('=')[0])]
                if arg.startswith('--') and not actions:  # its value cannot be told from a bare word
                    return
                takes_value = '=' not in arg and any(action.nargs != 0 for action in actions)
            else:
                option = self.word_option(arg) if self.word_option else None
                raise RunError(f'unexpected argument {arg!r}; '
                               + (f'did you mean {option} {shlex.quote(arg)}? ' if option else '')
                               + f'python {self.prog} --help lists the options')

    def error(self, message):
        raise RunError(f'{message}; python {self.prog} --help lists the options')

{%- if cookiecutter.task == 'classification' %}


METRIC_NAME = 'acc'  # what utils.metric_per_sample averages to: the name in the logs, runs.py's columns and the plots
{%- else %}


METRIC_NAME = 'mae'  # what utils.metric_per_sample averages to: the name in the logs, runs.py's columns and the plots
{%- endif %}


# -----------------------------------------------------------------------------
# run folders


def attempt_folder(folder, k):
    """NAME.attempt-K beside NAME: where set_aside keeps a --run_name start that saved nothing."""
    return folder.with_name(f'{folder.name}.attempt-{k}')


def parse_attempt(name):
    """(NAME, K) for a folder named NAME.attempt-K (attempt_folder), else None."""
    match = re.fullmatch(r'(.+)\.attempt-(\d+)', name)
    return (match[1], int(match[2])) if match else None


def read_note(folder):
    """The config (key: value lines under 'config:', updated by each resume's overrides, and the 'data:' lines,
    the splits' sizes, which runs.py and plot.py compare as they compare hyperparameters; a data key that a config
    key of your own already names is kept as 'data.KEY'), the provenance (the last one: the latest start's), and
    the last status line."""
    config, provenance, status, section, config_keys = {}, {}, None, None, set()
    for line in (folder / 'note.log').read_text(encoding='utf-8').splitlines():
        if line in ('config:', 'data:', 'provenance:'):
            section = line[:-1]
        elif line.startswith('    ') and ': ' in line and section:
            key, value = line[4:].split(': ', 1)  # not strip(): an empty value leaves 'key: '
            if section == 'config':
                config_keys.add(key)
            elif section == 'data' and key in config_keys:
                key = f'data.{key}'
            (provenance if section == 'provenance' else config)[key] = value
        else:
            section = None
            if line.startswith('status: '):
                status = line[len('status: '):]
            elif line.startswith('overrides: ') and config:  # 'overrides: lr=0.001, n_epoch=400' or 'none'
                before_a_key = ', (?=(?:' + '|'.join(re.escape(key) for key in config) + ')=)'  # values may hold ', '
                config.update(part.split('=', 1) for part in re.split(before_a_key, line[len('overrides: '):])
                              if '=' in part)
    return config, provenance, status


def checkpoints_folder_of(folder):
    """The checkpoints folder that a run's loggers folder names in its note.log, or None for another folder."""
    if not (Path(folder) / 'note.log').is_file():
        return None
    try:
        config, _, _ = read_note(Path(folder))
    except (OSError, UnicodeDecodeError):
        return None
    return config.get('checkpoints_dir') or None


def newest_run(root, file):
    """The name of the run folder under `root` whose `file` was written last, or None: what an error that asks
    for a run can suggest."""
    found = [(path.stat().st_mtime, path.parent.name) for path in Path(root).glob(f'*/{file}') if path.is_file()]
    return max(found)[1] if found else None


def names_a_run(word, checkpoints_root='checkpoints'):
    """Whether a bare word on a command line looks like a run to resume or predict with: a run's name under
    checkpoints_root, a run's folder (of .pt files, or its loggers folder) or a .pt file (a guess, for a hint)."""
    path = Path(word)
    return ((Path(checkpoints_root) / word).is_dir() or (path.suffix == '.pt' and path.is_file())
            or (path.is_dir() and (any(path.glob('*.pt')) or (path / 'note.log').is_file())))


def holds_checkpoints_not_logs(folder):
    """A run's checkpoints folder, which looks like its loggers folder: .pt files and no note.log."""
    return not (Path(folder) / 'note.log').exists() and any(Path(folder).glob('*.pt'))


def check_not_a_checkpoints_folder(folder):
    """plot.py reads a run's logs: a folder of checkpoints instead (the two look alike) says where the logs
    are when loggers/<its name> holds them."""
    folder = Path(folder)
    if not holds_checkpoints_not_logs(folder):
        return
    logs = Path('loggers') / folder.name
    where = f", which are in '{logs}': pass {folder.name}" if (logs / 'note.log').is_file() else (
        "; pass the run's loggers folder")
    raise RunError(f"'{folder}' holds a run's checkpoints, not its logs{where}")


def resolve_run(target, loggers_root='loggers'):
    """The loggers folder of a run named on plot.py's or runs.py's command line: a timestamp or --run_name under
    loggers_root, or a run's loggers folder."""
    for candidate in (Path(target), Path(loggers_root) / target):
        if candidate.is_dir():
            check_not_a_checkpoints_folder(candidate)
            return candidate
    raise RunError(f"no run '{target}': pass a timestamp under {loggers_root}/ or a run's loggers folder"
                   + project_folder_note(target, Path(loggers_root) / target))


def named_runs(names, loggers_root='loggers'):
    """The run folders that plot.py's or runs.py's names stand for, each named once, and the names left out: files,
    which `loggers/*` matches (a figure saved there), among two or more names. Returns (folders, files)."""
    files = [name for name in names if len(names) > 1 and Path(name).is_file()]
    kept = [name for name in names if name not in files]
    folders = [resolve_run(name, loggers_root) for name in kept]
    resolved = [folder.resolve() for folder in folders]
    repeated = [name for name, folder in zip(kept, resolved) if resolved.count(folder) > 1]
    if repeated:
        raise RunError(f"run '{repeated[0]}' is given twice; name each run once")
    return folders, files


NOT_HYPERPARAMETERS = {'loggers_dir', 'checkpoints_dir', 'dataset_dir'}  # where a run is, not how it trains


def differing_keys(configs):
    """The hyperparameters whose values differ between these configs (read_note's), sorted; an empty
    config (a damaged run's) takes no part."""
    readable = [config for config in configs if config]
    keys = sorted({key for config in readable for key in config} - NOT_HYPERPARAMETERS)
    return [key for key in keys if len({config.get(key) for config in readable}) > 1]


def alive(provenance):
    """True if the run's process still runs on this host; None if that cannot be told from here."""
    if provenance.get('host') != socket.gethostname() or 'pid' not in provenance:
        return None
    try:
        pid = int(provenance['pid'])
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return None
    cmdline = Path(f'/proc/{pid}/cmdline')  # Linux: is that pid still a train.py, or has it been reused?
    try:
        return b'train.py' in cmdline.read_bytes()
    except OSError:
        return True


HEARTBEAT_FILE = '.heartbeat'  # in loggers/<run> while a process writes the run (from 3.5 on)
TRACEBACK_FILE = 'traceback.txt'  # in loggers/<run>: a failed run's whole error, a crash's stacks (utils.py)
HEARTBEAT_STALE_SECONDS = 120  # untouched this long (this host's clock): gone, not watched (utils.heartbeat_moves)


def read_heartbeat(folder):
    """The owner a Heartbeat wrote in folder, with 'age' (seconds since it was last touched), or None."""
    path = Path(folder) / HEARTBEAT_FILE
    try:
        owner = json.loads(path.read_text(encoding='utf-8'))
        age = max(0.0, time.time() - path.stat().st_mtime)  # another host's clock may run ahead
    except (OSError, ValueError):
        return None
    return {**owner, 'age': age} if isinstance(owner, dict) else None


def shown_status(status, provenance, beat=None, folder=None):
    """A note.log status as runs.py lists it: without its time, and 'running' checked against the process, or on
    another host against its heartbeat (read_heartbeat) when there is one; a process gone in a crash that the run's
    folder holds the stack of is 'failed (Segmentation fault)', say, and a running one that StallWatch found stuck
    'running (no batch read since 14:02:11)'."""
    if status == 'running':
        state = alive(provenance)
        if state is None and beat and beat.get('host') == provenance.get('host'):
            state = beat['age'] < HEARTBEAT_STALE_SECONDS
        crash = last_crash(folder) if state is False and folder is not None else None
        if crash:
            return f'failed ({crash})'
        since = stalled_since(folder) if state and folder is not None else None
        if since:
            return f'running (no batch read since {since})'
        return {True: 'running', False: 'failed (process gone)', None: 'running?'}[state]
    return status.split(' at ')[0]


STALL_WARNING = 'warning: no batch read for'  # utils.StallWatch's train.log line, '... (since 14:02:11): ...'
STALLED_SINCE = re.compile(re.escape(STALL_WARNING) + r' .*? \(since (\d\d:\d\d:\d\d)\)')


def stalled_since(folder):
    """The time of day since which the run has read no batch, when train.log's last line is StallWatch's warning
    (a line that batches are read again follows it, if they are), else None."""
    try:
        with open(Path(folder) / 'train.log', 'rb') as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))  # the warning is a few hundred bytes
            lines = f.read().decode('utf-8', 'replace').splitlines()
    except OSError:
        return None
    match = STALLED_SINCE.search(lines[-1]) if lines else None
    return match.group(1) if match else None


FATAL_ERROR = re.compile(r'^Fatal Python error: (.+)$', re.M)  # faulthandler's first line
DATED_HEADER = r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d( rank \d+)?'  # utils.dated_header's
TRACEBACK_HEADER = re.compile(rf'^{DATED_HEADER}$', re.M)  # utils.write_traceback's
# above a stall's stacks (utils.StallWatch): its own line, or faulthandler's (its fallback's, and older runs')
STALL_HEADER = re.compile(rf'^({DATED_HEADER} no batch read for .*|Timeout \([\d:.]+\)!)$', re.M)


def last_crash(folder):
    """What faulthandler says crashed the run's last start ('Segmentation fault'), or None: traceback.txt ends with its
    stack, written after the start's .heartbeat was last touched (a crash leaves it; a later start writes its own)."""
    try:
        beat = (Path(folder) / HEARTBEAT_FILE).stat().st_mtime_ns
        with open(Path(folder) / TRACEBACK_FILE, 'rb') as f:
            if os.fstat(f.fileno()).st_mtime_ns < beat:
                return None
            f.seek(max(0, f.seek(0, os.SEEK_END) - 65536))  # a stack per thread: a few KB
            tail = f.read().decode('utf-8', 'replace')
    except OSError:
        return None
    fatal = [*FATAL_ERROR.finditer(tail)]
    if not fatal or any(header.search(tail, fatal[-1].end()) for header in (TRACEBACK_HEADER, STALL_HEADER)):
        return None  # an error's traceback came after it, or a later start's stall
    return fatal[-1].group(1)


# -----------------------------------------------------------------------------
# files the commands write (predict.py's predictions, plot.py's comparison): never over an existing one


def check_new_output(output):
    """Refuse an output file that exists, or whose folder does not, before any work is done."""
    if output.exists():
        raise RunError(f"'{output}' already exists; pass another --output, or move it away")
    if not output.parent.is_dir():
        raise RunError(f"cannot write '{output}': the folder '{output.parent}' does not exist; create it, "
                       'or pass another --output')


@contextlib.contextmanager
def new_file(output, binary=False, doing='predicting'):
    """A hidden temporary file next to `output` that becomes `output` once complete (never replacing a file
    that appeared there meanwhile); after a failure or Ctrl-C it is removed. Text is UTF-8, a file name's byte that
    is not (a surrogate in Python) written escaped, as '\\udce9'."""
    partial = output.with_name(f'.{output.name}.{os.getpid()}.tmp')
    try:
        f = (open(partial, 'xb') if binary
             else open(partial, 'x', newline='', encoding='utf-8', errors='backslashreplace'))
    except OSError as err:
        raise RunError(f"cannot write '{output}' ({err.strerror}); pass another --output") from None
    try:
        try:
            with f:
                yield f
        except OSError as err:
            if err.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise RunError(f"cannot write '{output}' ({err.strerror}); free space, or pass another --output") from None
        try:
            os.link(partial, output)  # unlike a rename, never replaces a file that appeared at `output` meanwhile
        except FileExistsError:
            raise RunError(f"'{output}' appeared while {doing}; pass another --output") from None
        except OSError:  # a file system without hard links: rename instead
            os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)


METRICS_COLUMNS = ('epoch', 'step', 'train_loss', 'train_metric', 'valid_loss', 'valid_metric', 'lr', 'epoch_seconds')
# after the columns every metrics.csv has; a file begun before they were logged lacks them, and so do its later rows
# grad_norm is empty in a row when not measured (clip_flag false); data_seconds: the epoch's wait for batches;
# train_seconds: the epoch's training part (2.1: no validation, no checkpoint strategy), runs.py's samples_per_s
OPTIONAL_METRICS_COLUMNS = ('grad_norm', 'data_seconds', 'train_seconds')


def read_metrics_rows(path):
    """metrics.csv's rows, one per epoch, of the history the run's checkpoints continue.

    A run resumed from an earlier point than its last logged epoch (killed after an epoch was logged
    but before the next latest_checkpoint.pt) trains those epochs again and appends them: a row whose
    epoch does not follow the row before starts over from that epoch. The file keeps every row.
    A row cut short by a crash or a full disk while it was written (the last line without its line end,
    or a line with too few or too many fields or a value that is not a number) is skipped: the epoch it
    was logging had no checkpoint yet, so the resumed run logs it again. A missing column is a ValueError;
    OPTIONAL_METRICS_COLUMNS may be missing, or empty in a row."""
    with open(path, newline='', encoding='utf-8') as f:
        text = f.read()
    lines = text[:text.rfind('\n') + 1].split('\n')[:-1]  # up to the last line end
    header = csv_fields(lines[0]) if lines else METRICS_COLUMNS
    missing = [column for column in METRICS_COLUMNS if column not in (header or ())]
    if missing:
        raise ValueError(f"no column '{missing[0]}'")
    rows = []
    for line in lines[1:]:
        row = whole_row(header, line)
        if row is None:
            continue
        while rows and int(rows[-1]['epoch']) >= int(row['epoch']):
            rows.pop()
        rows.append(row)
    return rows


def csv_fields(line):
    """One line's CSV fields; None for a line csv cannot read (a NUL on Python 3.10, a field over its limit)."""
    try:
        return next(csv.reader([line]), [])
    except csv.Error:
        return None


def whole_row(header, line):
    """A metrics.csv line as {column: value}, or None when it is not a whole row: a field missing or extra,
    one that is not a number (an optional column's may be empty), or not CSV at all (a power cut's zeros)."""
    fields = csv_fields(line)
    if fields is None or len(fields) != len(header):
        return None
    row = dict(zip(header, fields))
    try:
        int(row['epoch'])
        for column in METRICS_COLUMNS[1:]:
            float(row[column])
        for column in OPTIONAL_METRICS_COLUMNS:
            if row.get(column):
                float(row[column])
    except ValueError:
        return None
    return row
