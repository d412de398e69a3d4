#!/usr/bin/env python3
"""Writes the hostile-input corpus (tests/corpus/bad/) from the valid examples.

Every file must be rejected by vr-agent with an error naming the field (or the parse
position). Cases too big for the repository (1,000,000-entry arrays, 10 MB strings, deep
nesting, pushes over the size limit) are generated at test time by tests/hostile_corpus.rs.
Run: python3 tests/corpus/generate.py   (deterministic; rewrites the directory)
"""
import json, os, shutil, copy

ROOT = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(ROOT))
OUT = os.path.join(ROOT, "bad")

def load(path):
    with open(os.path.join(REPO, path)) as f:
        return json.load(f)

native = load("examples/native/router.json")
vpc_acl = load("examples/native/vpc-acl.json")
cs = {n: load("cloudstack/tests/cloudstack/" + n) for n in [
    "ips_add.json", "guestnetwork_add.json", "forwardrules_add.json", "staticnat_add.json", "firewall_add.json",
    "vpc_networkacl.json", "vpc_s2s_add.json", "vpc_staticroutes_add.json", "cmdline_router.json"]}

files = {}
def add(name, content):
    assert name not in files, name
    files[name] = content if isinstance(content, (bytes, str)) else json.dumps(content)

def leaves(v, path=()):
    if isinstance(v, dict):
        for k, x in v.items():
            yield from leaves(x, path + (k,))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            yield from leaves(x, path + (i,))
    else:
        yield path, v

def set_at(doc, path, value):
    d = copy.deepcopy(doc)
    cur = d
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value
    return d

def slug(path):
    return "-".join(str(p) for p in path)[:80]

SECRET = {"psk", "ipsec_psk", "password"}
# Control characters are refused in every string; config metacharacters wherever the string
# reaches FRR, strongSwan or nft text (names, policies, addresses...). Secrets travel over VICI
# or are checked for FRR, so only control characters are required to fail there.
for label, doc in [("native", native), ("vpcacl", vpc_acl)] + [("cs-" + n[:-5], d) for n, d in cs.items()]:
    for path, value in leaves(doc):
        if not isinstance(value, str) or path[-1] in ("type",):
            continue
        add(f"{label}--{slug(path)}--newline.json", set_at(doc, path, value + "\nrouter bgp 1"))
        add(f"{label}--{slug(path)}--bell.json", set_at(doc, path, value + "\u0007"))
        if path[-1] not in SECRET and not label.startswith("cs-cmdline"):
            add(f"{label}--{slug(path)}--meta.json", set_at(doc, path, value + "\" } ! # ;"))

# Malformed JSON.
text = json.dumps(native)
for i, cut in enumerate([1, 10, 100, len(text) // 2, len(text) - 1]):
    add(f"malformed--truncated-{i}.json", text[:cut])
add("malformed--trailing-garbage.json", text + " {}")
add("malformed--single-quotes.json", text.replace('"', "'"))
add("malformed--comment.json", "// comment\n" + text)
add("malformed--empty.json", "")
add("malformed--null.json", "null")
add("malformed--array.json", "[]")
add("malformed--nan.json", text.replace('"mtu": 1500', '"mtu": NaN'))
# Invalid UTF-8.
add("utf8--invalid-byte.json", b'{"schema":1,"routes":[{"destination":"10.9.0.0/16","gateway":"10.1.1.\xff"}]}')
add("utf8--overlong.json", b'{"schema":1,"interfaces":[{"device":"eth\xc0\xb0","role":"guest"}]}')
add("utf8--cs.json", b'{"type":"staticroutes","delete_from_processed_cache":false,"routes":[{"revoke":false,"ip_address":"10.1.1.1","gateway":"10.1.1.254","network":"10.9.\xfe.0/24"}]}')
# Wrong types.
for path, bad in [(("schema",), "1"), (("interfaces",), {}), (("interfaces", 0, "mtu"), "1500"), (("nat", "port_forwards", 0, "public_ports"), [22]),
                  (("vpn", "site_to_site", 0, "passive"), "no"), (("ospf", "router_id"), 3232235786), (("firewall", "ingress", 0, "id"), "101"),
                  (("routes", 0, "gateway"), None), (("nat", "static_nat"), "192.0.2.12"), (("ospf", "interfaces", 0, "cost"), 10.5)]:
    add(f"type--{slug(path)}.json", set_at(native, path, bad))
# Out-of-range numbers.
for path, bad in [(("schema",), 2), (("interfaces", 0, "mtu"), 10), (("interfaces", 0, "mtu"), 10**12), (("nat", "port_forwards", 0, "public_ports"), 0),
                  (("nat", "port_forwards", 0, "public_ports"), 65536), (("nat", "port_forwards", 0, "private_ports"), -22),
                  (("firewall", "ingress", 3, "icmp_type"), 256), (("vpn", "site_to_site", 0, "ike_lifetime"), -1),
                  (("vpn", "site_to_site", 0, "esp_lifetime"), 0), (("ospf", "interfaces", 0, "hello_interval"), 0),
                  (("ospf", "interfaces", 0, "authentication", "key_id"), 0), (("ospf", "interfaces", 0, "cost"), 70000)]:
    add(f"range--{slug(path)}-{bad}.json", set_at(native, path, bad))
# Duplicate keys.
add("dup--schema.json", '{"schema":1,"schema":1}')
add("dup--section.json", '{"schema":1,"routes":[],"routes":[]}')
add("dup--field.json", '{"schema":1,"routes":[{"destination":"10.9.0.0/16","destination":"10.8.0.0/16","gateway":"10.1.1.1"}]}')
add("dup--cs-type.json", '{"type":"staticroutes","type":"ips","delete_from_processed_cache":false,"routes":[]}')
# Conflicting mappings.
pf = native["nat"]["port_forwards"][0]
add("conflict--forward-twice.json", set_at(native, ("nat", "port_forwards"), [pf, dict(pf, private_ip="10.1.1.99")]))
sn = native["nat"]["static_nat"][0]
add("conflict--static-nat-twice.json", set_at(native, ("nat", "static_nat"), [sn, dict(sn, private_ip="10.1.1.99")]))
add("conflict--overlapping-range.json", set_at(native, ("nat", "port_forwards"), [dict(pf, public_ports="20-30", private_ports="20-30"), dict(pf, public_ports="25-35", private_ports="25-35", private_ip="10.1.1.98")]))
add("conflict--route-twice.json", set_at(native, ("routes",), native["routes"] * 2))
add("conflict--interface-twice.json", set_at(native, ("interfaces",), native["interfaces"] + native["interfaces"][:1]))
add("conflict--vpn-peer-twice.json", set_at(native, ("vpn", "site_to_site"), native["vpn"]["site_to_site"] * 2))
# Unknown fields and types.
add("unknown--top-level.json", dict(native, natt={}))
add("unknown--nested.json", set_at(native, ("nat", "port_forwards", 0, "targt"), "x"))
for t in ["ipz", "firewallrule", "", "IPS", "vm_data"]:
    add(f"unknown--cs-type-{t or 'empty'}.json", {"type": t, "delete_from_processed_cache": False})
add("unknown--cs-field.json", dict(cs["forwardrules_add.json"], extra_field=1))
add("unknown--neither-format.json", {"hello": "world"})

shutil.rmtree(OUT, ignore_errors=True)
os.makedirs(OUT)
for name, content in sorted(files.items()):
    mode = "wb" if isinstance(content, bytes) else "w"
    with open(os.path.join(OUT, name), mode) as f:
        f.write(content)
print(f"{len(files)} files in {os.path.relpath(OUT, REPO)}")
