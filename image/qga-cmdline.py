#!/usr/bin/env python3
"""Writes CloudStack's boot cmdline into a VM through its QEMU guest agent, the way CloudStack's
scripts/vm/hypervisor/kvm/patch.sh does with `virsh qemu-agent-command` (contract section 14):
guest-ping until it answers, guest-sync with id 1234567890 until the reply is exactly
{"return": 1234567890}, then guest-file-open /var/cache/cloud/cmdline (mode w+),
guest-file-write of the cmdline plus a newline (base64), guest-file-close.

    qga-cmdline.py SOCKET CMDLINE SECONDS

SOCKET is the host end of the org.qemu.guest_agent.0 virtio-serial port (a qemu
`-chardev socket,server=on`). Prints what it did, never the cmdline (it carries root's key).
"""
import base64
import json
import socket
import sys
import time

path, text, limit = sys.argv[1], sys.argv[2], float(sys.argv[3])
deadline = time.time() + limit


def give_up(why):
    sys.exit(f"qga: {why} within {limit:.0f} s")


while True:
    try:
        s = socket.socket(socket.AF_UNIX)
        s.connect(path)
        break
    except OSError:
        if time.time() > deadline:
            give_up("no guest-agent socket")
        time.sleep(0.5)
s.settimeout(1)
buf = b""


def send(cmd, args=None):
    msg = {"execute": cmd}
    if args is not None:
        msg["arguments"] = args
    s.sendall(json.dumps(msg).encode() + b"\n")


def reply(seconds):
    """The next JSON reply line, or None after `seconds`."""
    global buf
    end = time.time() + seconds
    while time.time() < end:
        if b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            try:
                return json.loads(line)
            except ValueError:
                continue
        try:
            data = s.recv(65536)
        except socket.timeout:
            continue
        if not data:
            give_up("guest-agent socket closed")
        buf += data
    return None


t0 = time.time()
while True:
    send("guest-ping")
    r = reply(3)
    if isinstance(r, dict) and "return" in r:
        break
    if time.time() > deadline:
        give_up("no answer to guest-ping")
print(f"qga: guest-ping answered after {time.time() - t0:.0f} s")
synced = False
while not synced:
    send("guest-sync", {"id": 1234567890})
    end = time.time() + 5
    while time.time() < end:
        if reply(1) == {"return": 1234567890}:
            synced = True
            break
    if not synced and time.time() > deadline:
        give_up("no guest-sync")


def call(cmd, args):
    send(cmd, args)
    while True:
        r = reply(30)
        if r is None:
            give_up(f"no answer to {cmd}")
        if "error" in r:
            sys.exit(f"qga: {cmd}: {r['error']}")
        if "return" in r:
            return r["return"]


fd = call("guest-file-open", {"path": "/var/cache/cloud/cmdline", "mode": "w+"})
data = (text + "\n").encode()
call("guest-file-write", {"handle": fd, "buf-b64": base64.b64encode(data).decode()})
call("guest-file-close", {"handle": fd})
print(f"qga: guest-sync, guest-file-open/write/close: /var/cache/cloud/cmdline written ({len(data)} bytes)")
