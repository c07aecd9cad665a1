"""The ports a group's gloo listens on come from the pod's net.ipv4.ip_local_port_range.

NCCL's and gloo's listening ports cannot be pinned by a setting; the operator confines them with that pod
sysctl (spec.rendezvous.ephemeralPorts) and its NetworkPolicy opens that range to the group's pods only.
This checks the premise with real processes: a 2-rank gloo group (the worker's CPU backend, and its
control channel beside NCCL) in a fresh network namespace whose range is 40000-44999, as in a pod.
Needs `unshare -n` (root); skipped elsewhere."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

LOW, HIGH = 40000, 44999
MASTER_PORT = 29500

RANKS = textwrap.dedent(
    f"""
    import datetime, json, subprocess, sys
    import torch.distributed as dist

    def listening():
        ports = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in open(table).read().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A":  # LISTEN
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        return sorted(ports)

    if len(sys.argv) > 1:  # one rank
        r = int(sys.argv[1])
        store = dist.TCPStore("127.0.0.1", {MASTER_PORT}, 2, r == 0, datetime.timedelta(seconds=60))
        dist.init_process_group("gloo", store=store, rank=r, world_size=2)
        dist.barrier()
        print(json.dumps(listening()), flush=True)
        dist.barrier()
        dist.destroy_process_group()
    else:  # the group: two rank processes
        cmd = [sys.executable, sys.argv[0]]
        ranks = [subprocess.Popen([*cmd, str(r)], stdout=subprocess.PIPE, text=True) for r in range(2)]
        seen = set()
        for p in ranks:
            out, _ = p.communicate(timeout=120)
            assert p.returncode == 0, out
            seen |= set(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(sorted(seen)))
    """
)


def in_netns(script: Path) -> subprocess.CompletedProcess[str]:
    """Runs a Python file in a fresh network namespace (loopback up) with the pod's port range."""
    setup = f'ip link set lo up && sysctl -qw net.ipv4.ip_local_port_range="{LOW} {HIGH}" && exec "$0" "$1"'
    return subprocess.run(
        ["unshare", "-n", "sh", "-c", setup, sys.executable, str(script)], capture_output=True, text=True, timeout=300
    )


def test_gloo_listens_inside_the_pods_ephemeral_port_range(tmp_path: Path) -> None:
    if not shutil.which("unshare") or not shutil.which("ip"):
        pytest.skip("needs unshare and ip")
    probe, group = tmp_path / "probe.py", tmp_path / "group.py"
    probe.write_text("print(open('/proc/sys/net/ipv4/ip_local_port_range').read())")
    group.write_text(RANKS)
    checked = in_netns(probe)
    if checked.returncode != 0:
        pytest.skip(f"cannot make a network namespace here: {checked.stderr.strip()[:200]}")
    assert checked.stdout.split() == [str(LOW), str(HIGH)]
    run = in_netns(group)
    assert run.returncode == 0, run.stderr[-3000:]
    ports = json.loads(run.stdout.strip().splitlines()[-1])
    others = [p for p in ports if p != MASTER_PORT]
    assert MASTER_PORT in ports, "the store listens on MASTER_PORT, which the policy names"
    assert others, "gloo listens on ports of its own"
    assert all(LOW <= p <= HIGH for p in others), f"a listening port outside {LOW}-{HIGH}: {ports}"
