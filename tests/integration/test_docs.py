"""The README documents every flag and variable the binary knows."""
import os
import re

from arbiter_proc import ROOT, run


def test_every_flag_and_variable_is_in_the_readme():
    help_text = run(["--help"]).stdout
    flags = set(re.findall(r"--[a-z][a-z-]+", help_text))
    envs = set(re.findall(r"LOCK_ARBITER_[A-Z_]+", help_text))
    assert len(flags) >= 20 and len(envs) >= 19
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    missing = sorted(x for x in flags | envs if x not in readme)
    assert missing == [], "README.md lacks %s" % missing
