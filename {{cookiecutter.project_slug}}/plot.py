"""Draw a run's curves from its metrics.csv:

    python plot.py 20260101_120000          # or a loggers/<timestamp> folder
    -> loggers/20260101_120000/curves.png

Loss, metric and learning rate against epoch, train and valid together, the best epoch marked.
Needs matplotlib (pip install matplotlib); train.py draws the curves at the end of every run.
"""

from pathlib import Path

from runfiles import METRIC_NAME, METRICS_COLUMNS, CommandParser, RunError, one_line_errors, read_metrics_rows

METRIC_LABEL = {'acc': 'accuracy', 'mae': 'mean absolute error'}[METRIC_NAME]


def read_metrics(folder):
    """metrics.csv as {column: [values]}, one value per epoch (read_metrics_rows: after a resume from an
    earlier point, the epochs trained again replace the ones logged before)."""
    path = Path(folder) / 'metrics.csv'
    try:
        rows = read_metrics_rows(path)
        metrics = {column: [float(row[column]) for row in rows] for column in METRICS_COLUMNS}
    except FileNotFoundError:
        raise RunError(f"no metrics.csv in '{folder}': has the run finished an epoch?") from None
    except (KeyError, ValueError, TypeError) as err:
        raise RunError(f"'{path}' is damaged ({err})") from None
    if not rows:
        raise RunError(f"'{path}' has no epochs yet")
    return metrics


def plot_run(folder):
    """Write <folder>/curves.png and return its path. Raises ImportError without matplotlib, RunError
    when metrics.csv is missing or damaged or the image cannot be written."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    folder = Path(folder)
    m = read_metrics(folder)
    epochs = m['epoch']
    best = min(range(len(epochs)), key=lambda i: m['valid_loss'][i])
    marker = '.' if len(epochs) <= 60 else None
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.6), constrained_layout=True)
    for ax, name, label in ((axes[0], 'loss', 'loss'), (axes[1], 'metric', METRIC_LABEL)):
        ax.plot(epochs, m[f'train_{name}'], marker=marker, label='train')
        ax.plot(epochs, m[f'valid_{name}'], marker=marker, label='valid')
        ax.axvline(epochs[best], color='grey', linestyle='--', linewidth=1, label=f'best epoch ({epochs[best]:g})')
        ax.plot(epochs[best], m[f'valid_{name}'][best], 'o', color='C1', markersize=9, fillstyle='none')
        ax.set(xlabel='epoch', ylabel=label, title=label)
    axes[2].plot(epochs, m['lr'], marker=marker, color='C2', label='learning rate (end of epoch)')
    axes[2].ticklabel_format(axis='y', style='sci', scilimits=(-2, 3))
    axes[2].set(xlabel='epoch', ylabel='learning rate', title='learning rate')
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs: no ticks at 1.5, 2.5
        ax.grid(alpha=0.3)
        ax.legend()
    figure.suptitle(f"run {folder.name}: best valid loss {m['valid_loss'][best]:.4g} at epoch {epochs[best]:g}")
    path = folder / 'curves.png'
    try:
        figure.savefig(path, dpi=100)
    except OSError as err:  # a full disk or a read-only folder must not fail the run that just finished
        raise RunError(f"cannot write '{path}' ({err.strerror or err}); free space or fix the folder's "
                       f'permissions, then python plot.py {folder.name}') from None
    finally:
        plt.close(figure)
    return path


def save_curves(folder):
    """plot_run() for the end of a run: a one-line message, never an exception."""
    try:
        return f'saved {plot_run(folder)}'
    except ImportError:
        return (f'no curves.png: matplotlib is not installed; pip install matplotlib, '
                f'then python plot.py {Path(folder).name}')
    except RunError as err:
        return f'no curves.png: {err}'
    except Exception as err:  # a plotting bug must not fail a run that has finished (or leave DDP ranks waiting)
        return (f'no curves.png: drawing failed ({type(err).__name__}: {err}); '
                f'python plot.py {Path(folder).name} shows the traceback')


def resolve_run(target, loggers_root='loggers'):
    for candidate in (Path(target), Path(loggers_root) / target):
        if candidate.is_dir():
            return candidate
    raise RunError(f"no run '{target}': pass a timestamp under {loggers_root}/ or a run's loggers folder")


if __name__ == '__main__':
    parser = CommandParser(description='Write loggers/<timestamp>/curves.png from its metrics.csv.')
    parser.add_argument('run', help='a timestamp under loggers/, or a loggers/<timestamp> folder')
    with one_line_errors():
        args = parser.parse_args()
        try:
            print(f'wrote {plot_run(resolve_run(args.run))}')
        except ImportError:
            raise RunError('matplotlib is not installed; pip install matplotlib') from None
