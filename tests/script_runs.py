"""Running a user script in a child Python, plainly or under `neuron-emu run` (as a user runs it: the same entry point
as the console script), for the tests that compare the two."""
import os
import subprocess
import sys

LAUNCHER = [sys.executable, "-m", "neuron_emu.cli", "run", "--no-monitor"]


def run(args, cwd, env=None, rc=0, timeout=600):
    """(stdout, stderr) of `args` run in `cwd` (with `env` over this process's environment), which must exit `rc`."""
    r = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                       env=None if env is None else {**os.environ, **env})
    assert r.returncode == rc, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout, r.stderr


def python(script, cwd, *argv, **kw):
    return run([sys.executable, script, *argv], cwd, **kw)


def launched(script, cwd, *argv, opts=(), **kw):
    """`script` under `neuron-emu run` (launcher options `opts` before it, the script's `argv` after)."""
    return run([*LAUNCHER, *opts, script, *argv], cwd, **kw)


def fields(stdout: str, prefixes=None) -> dict:
    """The `name value` lines of a script's output (only those starting with one of `prefixes`, if given)."""
    return dict(l.split(" ", 1) for l in stdout.splitlines()
                if " " in l and (prefixes is None or l.startswith(tuple(prefixes))))
