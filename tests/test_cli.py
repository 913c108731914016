"""The `neuron-emu` console script: run (unmodified scripts under import shims), profile, ls, monitor, top.

Each command runs in a subprocess as a user would run it (`python -m neuron_emu.cli`, the same entry point as the
console script); `top` runs under a pseudo-terminal. Oracles: neuron-ls / neuron-monitor formats from
docs/reference/neuron-api.md section 5, the instance table for devices and cores."""
import json
import os
import pty
import select
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from neuron_emu.hardware import INSTANCES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(*args, env=None, timeout=240, **kw):
    e = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {}))
    return subprocess.run([sys.executable, "-m", "neuron_emu.cli", *args], capture_output=True, text=True, env=e,
                          timeout=timeout, **kw)


def test_ls_table_and_json():
    r = cli("ls", env={"NEURON_EMU_INSTANCE_TYPE": "inf2.24xlarge"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("instance-type: inf2.24xlarge\n")
    assert "| NEURON DEVICE | NEURON CORES | NEURON CORE IDS | NEURON MEMORY | CONNECTED DEVICES |" in r.stdout
    rows = [ln for ln in r.stdout.splitlines() if ln.startswith("| ") and "NEURON" not in ln]
    assert len(rows) == INSTANCES["inf2.24xlarge"].chips == 6
    assert rows[5].split("|")[3].strip() == "10-11" and rows[0].split("|")[4].strip() == "32 GB"
    r = cli("ls", "--json-output", "--instance-type", "inf1.6xlarge")
    devs = json.loads(r.stdout)
    assert [d["nc_count"] for d in devs] == [4] * 4 and devs[3]["neuroncore_ids"] == [12, 13, 14, 15]
    r = cli("ls", "--instance-type", "inf9.xlarge")
    assert r.returncode != 0 and "unknown instance type 'inf9.xlarge'; valid: inf1.24xlarge" in r.stderr


SCRIPT = textwrap.dedent("""
    import sys
    import torch
    import torch_neuronx                      # resolved by the shim, as on a real Inf2 instance
    from torch_neuronx import trace           # noqa: F401
    import torch_neuron
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8)).eval()
    x = torch.randn(4, 32)
    neuron_model = torch_neuronx.trace(model, x)
    for _ in range(3):
        y = neuron_model(x)
    assert torch.allclose(y, model(x), atol=5e-2), "numerics"
    print("script args", sys.argv[1:], torch_neuronx.__name__, torch_neuron.__name__)
""")


@pytest.mark.slow
def test_run_unmodified_script(tmp_path):
    script = tmp_path / "user_script.py"
    script.write_text(SCRIPT)
    report, trace = tmp_path / "r.json", tmp_path / "t.json"
    r = cli("run", "--report", str(report), "--perfetto", str(trace), str(script), "--flag", "1")
    assert r.returncode == 0, r.stderr
    assert "script args ['--flag', '1'] torch_neuronx_emu torch_neuron_emu" in r.stdout
    # torch_neuronx.trace runs the compiled model once (as torch.jit.trace does), then the script's 3 calls
    assert "per-engine summary" in r.stderr and "4 execution(s)" in r.stderr and "TensorE" in r.stderr
    rep = json.loads(report.read_text())
    core = rep["summary"]["cores"][0]
    assert core["executions"] == 4 and core["engines"]["TensorE"]["flops"] == 4 * 2 * 4 * (32 * 64 + 64 * 8)
    assert rep["last_model"]["latency_ms"] == pytest.approx(core["modelled_s"] / 4 * 1e3)
    events = json.loads(trace.read_text())["traceEvents"]
    assert any(e["ph"] == "X" and e["name"] == "aten::addmm" for e in events)


def test_run_shims_and_exit_code(tmp_path):
    script = tmp_path / "s.py"
    script.write_text("import sys\nimport torch_neuronx, torch_neuron\nfrom torch_neuronx.experimental import "
                      "set_neuron_cores\nprint(torch_neuronx.__name__, torch_neuron.__name__, sys.argv[1:])\n"
                      "sys.exit(3)\n")
    r = cli("run", "--no-monitor", str(script), "a", "--b")
    assert r.returncode == 3 and "torch_neuronx_emu torch_neuron_emu ['a', '--b']" in r.stdout
    assert "no Neuron model was executed" in r.stderr


def test_monitor_report_in_process(tmp_path, capsys):
    """The report a `neuron-emu run` process publishes, and what `monitor` / `top` make of it."""
    import torch_neuronx_emu
    from neuron_emu import monitoring
    from neuron_emu.cli.monitor import render
    from neuron_emu.cli.main import main
    from neuron_emu.runtime.placement import runtime_for

    m = torch_neuronx_emu.trace(torch.nn.Linear(8, 8).eval(), torch.randn(2, 8))
    for _ in range(3):
        m(torch.randn(2, 8))
    core = next(c for c in runtime_for(2).cores if c.counters().executions)
    path = monitoring.publish(str(tmp_path), 1.0)
    assert path.endswith(f"{os.getpid()}.json")
    doc = monitoring.collect(str(tmp_path))
    entry = next(e for e in doc["neuron_runtime_data"] if e["pid"] == os.getpid())
    rep = entry["report"]
    nc = rep["neuroncore_counters"]["neuroncores_in_use"][str(core.index)]
    assert 0.0 <= nc["neuroncore_utilization"] <= 100.0 and nc["flops"] >= 0
    ex = rep["execution_stats"]
    assert ex["execution_summary"]["completed"] >= 4
    lat = ex["latency_stats"]["total_latency"]
    assert set(lat) == {"p0", "p1", "p25", "p50", "p75", "p99", "p100"} and 0 < lat["p0"] <= lat["p50"] <= lat["p100"]
    # percentiles of the modelled latencies of this process's executions (other tests' models included)
    assert lat["p0"] <= torch_neuronx_emu.last_call().latency_s <= lat["p100"]
    assert rep["memory_used"]["neuron_runtime_used_bytes"]["neuron_device"] > 0
    assert doc["neuron_hardware_info"]["neuroncore_per_device_count"] == 2
    text = render(doc)
    assert f"Process {os.getpid()}" in text and f"NC{core.index:2d} [" in text and "latency p50" in text
    monkey_env = dict(os.environ)
    try:
        os.environ["NEURON_EMU_MONITOR_DIR"] = str(tmp_path)
        assert main(["monitor", "--count", "1"]) == 0
        streamed = json.loads(capsys.readouterr().out)
        assert any(e["pid"] == os.getpid() for e in streamed["neuron_runtime_data"])
        assert main(["top", "--iterations", "1"]) == 0     # not a terminal here: no clear-screen sequence
        out = capsys.readouterr().out
        assert "\x1b[2J" not in out and f"Process {os.getpid()}" in out
    finally:
        os.environ.clear()
        os.environ.update(monkey_env)


@pytest.mark.slow
def test_profile_saved_model(tmp_path):
    import torch_neuronx_emu
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU()).eval()
    traced = torch_neuronx_emu.trace(model, torch.randn(2, 16))
    path = tmp_path / "m.pt"
    torch.jit.save(traced, str(path))
    r = cli("profile", str(path), "--json", "--num-cores", "2", "--perfetto", str(tmp_path / "p.json"))
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["batch"] == 2 and d["num_cores"] == 2 and d["instance_type"] == "inf2.xlarge"
    assert d["throughput_per_s"] == pytest.approx(2 * 2 / (d["latency_ms"] * 1e-3))
    assert json.loads((tmp_path / "p.json").read_text())["traceEvents"]
    r = cli("profile", str(path), "--inputs", "2x16:float32")
    assert r.returncode == 0 and "| TensorE |" in r.stdout
    r = cli("profile", str(path), "--inputs", "3x16")
    assert r.returncode != 0 and "Input tensor 0 has shape [3, 16]" in r.stderr
    r = cli("profile", str(path), "--instance-type", "inf1.xlarge")
    assert r.returncode != 0 and "valid instance types for NeuronCore-v2" in r.stderr


LOOP = textwrap.dedent("""
    import time, torch, torch_neuronx
    m = torch_neuronx.trace(torch.nn.Linear(8, 8).eval(), torch.randn(2, 8))
    t0 = time.time()
    while time.time() - t0 < 60:
        m(torch.randn(2, 8))
        time.sleep(0.01)
""")


@pytest.fixture
def running_script(tmp_path):
    script = tmp_path / "loop.py"
    script.write_text(LOOP)
    env = dict(os.environ, PYTHONPATH=ROOT, NEURON_EMU_MONITOR_DIR=str(tmp_path / "mon"))
    p = subprocess.Popen([sys.executable, "-m", "neuron_emu.cli", "run", "--monitor-period", "0.2", str(script)],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    published = tmp_path / "mon" / f"{p.pid}.json"
    deadline = time.time() + 300
    while time.time() < deadline:  # until the script has traced and executed its model
        try:
            rep = json.loads(published.read_text())["report"]
            if rep["execution_stats"]["execution_summary"]["completed"] > 0:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    yield p, env
    p.kill()
    p.wait()


@pytest.mark.slow
def test_monitor_stream(running_script):
    p, env = running_script
    time.sleep(0.5)
    r = subprocess.run([sys.executable, "-m", "neuron_emu.cli", "monitor", "--period", "200ms", "--count", "2"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    docs = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(docs) == 2
    d = docs[-1]
    assert set(d) >= {"neuron_runtime_data", "system_data", "instance_info", "neuron_hardware_info"}
    entry = next(e for e in d["neuron_runtime_data"] if e["pid"] == p.pid)
    rep = entry["report"]
    util = rep["neuroncore_counters"]["neuroncores_in_use"]["0"]
    assert 0.0 <= util["neuroncore_utilization"] <= 100.0 and util["flops"] >= 0
    ex = rep["execution_stats"]
    assert ex["execution_summary"]["completed"] > 0
    lat = ex["latency_stats"]["total_latency"]
    assert set(lat) == {"p0", "p1", "p25", "p50", "p75", "p99", "p100"} and 0 < lat["p0"] <= lat["p50"] <= lat["p100"]
    assert rep["memory_used"]["neuron_runtime_used_bytes"]["neuron_device"] > 0
    assert d["neuron_hardware_info"]["neuroncore_per_device_count"] == 2


@pytest.mark.slow
def test_top_under_a_terminal(running_script):
    p, env = running_script
    pid, fd = pty.fork()
    if pid == 0:  # child: a real terminal on stdout
        os.execvpe(sys.executable, [sys.executable, "-m", "neuron_emu.cli", "top", "--period", "0.2",
                                    "--iterations", "2"], env)
    out = b""
    deadline = time.time() + 120
    while time.time() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.waitpid(pid, 0)
    text = out.decode(errors="replace")
    assert text.count("\x1b[H\x1b[2J") == 2           # redrawn in place on a terminal
    assert f"Process {p.pid}" in text and "NeuronCore Utilization" in text and "NC 0 [" in text
    assert "latency p50" in text


def test_compile_progress_line():
    import io
    from neuron_emu.progress import compile_progress

    class Tty(io.StringIO):
        def isatty(self):
            return True
    out = Tty()
    with compile_progress("Slow", delay_s=0.05, tick_s=0.02, stream=out):
        time.sleep(0.3)
    text = out.getvalue()
    assert text.startswith("Compiling Slow ") and "..." in text and text.endswith("Compiler status PASS\n")
    quick = Tty()
    with compile_progress("Quick", delay_s=5, stream=quick):
        pass
    assert quick.getvalue() == ""                    # under a second: nothing printed
    piped = io.StringIO()                            # not a terminal: silent unless NEURON_EMU_PROGRESS=1
    with compile_progress("Piped", delay_s=0.0, tick_s=0.01, stream=piped):
        time.sleep(0.05)
    assert piped.getvalue() == "" or os.environ.get("NEURON_EMU_PROGRESS") == "1"
