"""The commands that README.md and the scripts show (usage lines, error hints) name options that exist,
the README's Config table names every key, and train.py --help describes each one."""

import re

import pytest

import utils
from conftest import PROJECT, help_of
from utils import CONFIG_SOURCES, config_comments

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


def accepted_options(script):
    """The options `script --help` lists."""
    return set(OPTION.findall(help_of(script)[0]))


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
    keys = accepted_options('train.py') - {'--help', '--resume', '--run_name', '--config'}
    missing = sorted(key for key in keys if f'`{key[2:]}`' not in table)
    assert not missing, f"README.md's Config table does not name {', '.join(missing)}"


def test_train_help_gives_each_key_the_comment_beside_it_in_its_config_dict():
    entries = re.findall(r'^  --(\w+) [A-Z_]+\s+(.*?)\s*(?=^  -|\Z)', help_of('train.py')[0], re.MULTILINE | re.DOTALL)
    helps = {key: ' '.join(text.split()) for key, text in entries}  # argparse wraps long lines
    assert helps.keys() >= {'seed', 'early_stop', 'dropout'}
    comments = config_comments(PROJECT / name for name in CONFIG_SOURCES)
    assert helps['early_stop'] == 'stop after this many epochs without a lower valid loss (0: off) (default: 50)'
    assert helps['init_from'].endswith("(default: '')") and helps['num_workers'].endswith('(default: 0)')
    undescribed = sorted(key for key, text in helps.items()
                         if key not in ('resume', 'run_name', 'config') and not text.startswith(comments.get(key, '?')))
    assert not undescribed, f'keys without a comment in their config dict: {undescribed}'


def test_config_comments_reads_only_a_keys_own_trailing_comment(tmp_path):
    source = tmp_path / 'source.py'
    source.write_text("CONFIG = {\n"
                      "    'plain': 1,\n"
                      "    'hash_in_value': '#not a comment',  # the real one\n"
                      "    # a comment line of its own\n"
                      "    \"double\": 2.0,  #   spaced   \n"
                      "}\n"
                      "x = {'inline': 1}  # not a config line\n"
                      "call('not_a_key', 3)  # no colon\n")
    assert config_comments([source]) == {'hash_in_value': 'the real one', 'double': 'spaced'}


def test_a_percent_sign_in_a_comment_shows_in_help(monkeypatch, capsys):
    # argparse formats help with %: a comment's own % must not break --help
    monkeypatch.setattr(utils, 'config_comments', lambda paths: {'lr': 'peak lr, 100% after warmup'})
    with pytest.raises(SystemExit) as stop:
        utils.parse_args({'lr': 1e-4, 'name': '50%'}, ['--help'])
    text = ' '.join(capsys.readouterr().out.split())
    assert stop.value.code == 0 and 'peak lr, 100% after warmup (default: 0.0001)' in text and 'default: 50%' in text
