"""What a first user meets at the command line: `--version`, each command's `--help` with examples and a help
text for every option, and `loadtest --out` refusing a folder that already holds results (like `run`)."""
from __future__ import annotations

import argparse

import numpy as np
import pytest

from deploy_compare.app import cli


def test_version_prints_the_installed_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"deploy-compare {version('deploy-compare')}"


@pytest.mark.parametrize("command", cli.COMMANDS.names())
def test_every_command_shows_examples_and_explains_every_option(command):
    parser, _ = cli.command_parser(command)
    text = parser.format_help()
    examples = text.split("examples:\n", 1)[1]
    assert f"deploy-compare {command}" in examples, text
    undocumented = [a.option_strings or a.dest for a in parser._actions
                    if not isinstance(a, argparse._HelpAction) and not (a.help or "").strip()]
    assert undocumented == [], f"{command}: options without help text: {undocumented}"
    for line in examples.splitlines():  # every example parses (the positional run folder need not exist)
        words = line.split("#")[0].split()
        if words[:2] == ["deploy-compare", command] and not line.rstrip().endswith("\\"):
            parser.parse_args(words[2:])


def test_loadtest_refuses_an_out_folder_that_holds_results_unless_forced(tmp_path):
    from deploy_compare.core.errors import UserError

    np.save(tmp_path / "x.npy", np.zeros((1, 4), dtype=np.float32))
    out = tmp_path / "out"
    (out / "logs").mkdir(parents=True)
    (out / "loadtest.json").write_text("{}")
    parser, module = cli.command_parser("loadtest")
    argv = ["--url", "http://127.0.0.1:9/predict", "--payload", str(tmp_path / "x.npy"), "--out", str(out)]
    with pytest.raises(UserError, match=f"--out {out} already holds results.*--force"):
        module.main(parser.parse_args(argv))
    assert (out / "loadtest.json").read_text() == "{}"
    assert parser.parse_args([*argv, "--force"]).force
