"""Entry point of the `neuron-emu` console script."""
from __future__ import annotations

import argparse
import sys


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="neuron-emu", description="AWS Neuron SDK emulator tools")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run an unmodified script with torch_neuron/torch_neuronx/torch_xla import shims")
    r.add_argument("--report", metavar="PATH", help="write the engine summary and the last model's report (JSON)")
    r.add_argument("--perfetto", metavar="PATH", help="write the last executed model's timeline (Chrome trace JSON)")
    r.add_argument("--no-monitor", dest="monitor", action="store_false",
                   help="do not publish counters for `neuron-emu monitor` / `top`")
    r.add_argument("--monitor-period", type=float, default=1.0, metavar="SECONDS")
    r.add_argument("script")
    r.add_argument("args", nargs=argparse.REMAINDER)
    pr = sub.add_parser("profile", help="profile a saved traced model (latency, engines, cost)")
    pr.add_argument("model", metavar="MODEL.pt")
    pr.add_argument("--inputs", nargs="+", metavar="SPEC", help="SHAPE[:DTYPE] (e.g. 1x128:int64) or a torch.save "
                    "file per input (default: zeros of the compiled shapes)")
    pr.add_argument("--instance-type", help="default: inf2.xlarge (Inf2 models), inf1.xlarge (Inf1 models)")
    pr.add_argument("--num-cores", type=int, default=1)
    pr.add_argument("--json", action="store_true", help="print the report as JSON instead of markdown")
    pr.add_argument("--output", metavar="PATH", help="also write the report as JSON")
    pr.add_argument("--perfetto", metavar="PATH", help="write the timeline (Chrome trace JSON)")
    pr.add_argument("--plot", metavar="PATH", help="write the engine-utilization plot (PNG, needs matplotlib)")
    ls = sub.add_parser("ls", help="list the emulated instance's Neuron devices and cores (neuron-ls)")
    ls.add_argument("-j", "--json-output", action="store_true")
    ls.add_argument("--instance-type", help="default: NEURON_EMU_INSTANCE_TYPE, else inf2.xlarge")
    m = sub.add_parser("monitor", help="stream neuron-monitor JSON reports of processes under `neuron-emu run`")
    m.add_argument("-c", "--config-file", help="neuron-monitor config (its \"period\" is used)")
    m.add_argument("--period", default="1s")
    m.add_argument("--count", type=int, help="stop after this many reports (default: run until interrupted)")
    t = sub.add_parser("top", help="live text view of the monitor data")
    t.add_argument("--period", default="1s")
    t.add_argument("--iterations", type=int, help="stop after this many refreshes")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.command == "run":
        from neuron_emu.cli.run import main as run
        return run(args)
    if args.command == "profile":
        from neuron_emu.cli.profile_cmd import main as prof
        return prof(args)
    if args.command == "ls":
        from neuron_emu.cli.ls import main as ls_main
        return ls_main(args)
    from neuron_emu.cli.monitor import monitor_main, top_main
    return monitor_main(args) if args.command == "monitor" else top_main(args)


if __name__ == "__main__":
    sys.exit(main())
