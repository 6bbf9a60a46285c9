"""The commands that README.md and the scripts show (usage lines, error hints) name options that exist, and
the README's Config table names every key."""

import re
import subprocess
import sys
from functools import cache

from conftest import PROJECT

# `python train.py --lr 3e-4`, `torchrun --standalone --nproc_per_node=4 train.py --lr 4e-4`; a command ends
# at a line end, a comment, a quote or a backtick (in Markdown and in the scripts' f-strings alike)
COMMAND = re.compile(r"(?:python3?|torchrun)(?:\s+--?[\w-]+(?:=\S+)?)*\s+(\w+\.py)([^\n#`'\"]*)")
OPTION = re.compile(r'(?<![\w-])--[a-z][\w-]*')


def shown_commands():
    """(where, script, options) for every command in README.md and in the project's own scripts."""
    for source in [PROJECT / 'README.md', *sorted(PROJECT.glob('*.py'))]:
        lines = source.read_text(encoding='utf-8').splitlines()
        for number, line in enumerate(lines, 1):
            following = iter(lines[number:])
            while line.endswith('\\'):  # a shell command continued on the next line
                line = line[:-1] + next(following, '')
            for match in COMMAND.finditer(line):
                yield f'{source.name}:{number}', match[1], OPTION.findall(match[2])


@cache
def accepted_options(script):
    """The options `script --help` lists."""
    result = subprocess.run([sys.executable, script, '--help'], cwd=PROJECT, capture_output=True, text=True)
    assert result.returncode == 0, f'{script} --help failed: {result.stderr[-2000:]}'
    return set(OPTION.findall(result.stdout))


def test_the_readme_shows_commands_of_every_script():
    scripts = {script for _, script, _ in shown_commands()}
    assert {'train.py', 'predict.py', 'plot.py', 'runs.py'} <= scripts


def test_every_shown_command_uses_options_its_script_takes():
    wrong = []
    for where, script, options in shown_commands():
        if not (PROJECT / script).is_file():
            wrong.append(f'{where}: {script} is not a script of this project')
            continue
        wrong += [f'{where}: {script} has no {option}' for option in options if option not in accepted_options(script)]
    assert not wrong, '\n'.join(wrong)


def test_the_readme_config_table_names_every_key():
    readme = (PROJECT / 'README.md').read_text(encoding='utf-8')
    table = readme[readme.index('\n## Config\n'):]
    table = table[:table.index('\n## ', 1)]
    keys = accepted_options('train.py') - {'--help', '--resume', '--config'}
    missing = sorted(key for key in keys if f'`{key[2:]}`' not in table)
    assert not missing, f"README.md's Config table does not name {', '.join(missing)}"
