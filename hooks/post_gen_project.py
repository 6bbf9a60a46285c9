"""Remove what the answers did not select, and tool caches copied from a local template checkout; then
print the commands to run next. Idempotent, and touches nothing outside the project folder but the copy of
this hook that cookiecutter left in the temp folder."""

import atexit
import contextlib
import json
import shlex
import shutil
import tempfile
from pathlib import Path

ANSWERS = json.loads(r"""
{{ cookiecutter | tojson }}
""".strip())

# Files that only make sense for some answers: {path: predicate on the answers}.
KEEP_IF = {
    'tests/test_data_layout.py': lambda a: a['dataset'] != 'synthetic',
}
# Made by running Python, pytest or ruff inside the template folder; never part of a project.
CACHE_DIRS = ('__pycache__', '.pytest_cache', '.ruff_cache')
QUICK_START = '## Quick start\n\n```bash\n'


def next_steps(project):
    """What to run next: the baked README's Quick start commands, after a cd into the project."""
    _, found, rest = (project / 'README.md').read_text(encoding='utf-8').partition(QUICK_START)
    commands = rest.split('```', 1)[0] if found else ''
    return f'Made {project}. Next (README.md has the rest):\n\ncd {shlex.quote(str(project))}\n{commands}'


def remove_if_a_temp_copy(path):
    """cookiecutter runs a rendered copy of each hook from the temp folder and leaves it there, one file per hook
    and bake (cookiecutter issue 886): remove that copy when the hook ends. Never a file elsewhere, such as the
    template's own hook."""
    path = Path(path).resolve()
    if path.parent == Path(tempfile.gettempdir()).resolve():
        with contextlib.suppress(OSError):  # litter at worst, as before
            path.unlink()


if __name__ == '__main__':
    atexit.register(remove_if_a_temp_copy, __file__)  # __file__ may be unset by then
    project = Path.cwd()
    for relative, keep in KEEP_IF.items():
        path = project / relative
        if not keep(ANSWERS) and path.is_file():
            path.unlink()
    for folder in (project, project / 'tests'):  # the template's folders, not a user's .venv or data
        for name in CACHE_DIRS:
            cache = folder / name
            if cache.is_dir() and not cache.is_symlink():
                shutil.rmtree(cache)
    if '_output_dir' in ANSWERS:  # set by cookiecutter itself; cruft bakes into temporary folders, to diff them
        print(next_steps(project))
