#!/usr/bin/env python3
"""Helpers of bench/run.sh (Python 3, stdlib only), one subcommand each:

  creds NAMES SECRETS OUT    `NAME<TAB>Basic base64(NAME:SECRET)` lines for update.lua
  startup LOG PORT -- CMD... start CMD, time until the first HTTP answer on
                             127.0.0.1:PORT; prints `pid=PID ms=MS`, then waits for CMD
  propagation ...            steady changing updates; per sampled update, the time from
                             its `good` to NSD answering the new address (raw UDP DNS)
  report RESULTS OUT.md      the Markdown table from run.sh's raw result lines

Everything talks to 127.0.0.1 only; every loop is bounded in count and time.
"""

import argparse
import base64
import http.client
import os
import queue
import random
import select
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time


def creds(args):
    with open(args.names) as n, open(args.secrets) as s, open(args.out, "w") as out:
        names = [l.strip() for l in n if l.strip()]
        secrets = [l.strip() for l in s if l.strip()]
        if len(names) != len(secrets):
            sys.exit(f"creds: {len(names)} names but {len(secrets)} secrets")
        for name, secret in zip(names, secrets):
            b = base64.b64encode(f"{name}:{secret}".encode()).decode()
            out.write(f"{name}\tBasic {b}\n")


def startup(args):
    """Start the server and time until it answers an HTTP request (any status)."""
    log = open(args.log, "ab")
    t0 = time.monotonic()
    p = subprocess.Popen(args.command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                         start_new_session=True)
    deadline = t0 + args.timeout
    while time.monotonic() < deadline:  # bounded: ~1 ms per attempt until the deadline
        if p.poll() is not None:
            sys.exit(f"startup: server exited with {p.returncode}; see {args.log}")
        try:
            with socket.create_connection(("127.0.0.1", args.port), timeout=1) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                s.settimeout(2)
                if s.recv(12).startswith(b"HTTP/1."):
                    ms = (time.monotonic() - t0) * 1000
                    print(f"pid={p.pid} ms={ms:.1f}", flush=True)
                    # Stay the server's parent, to reap it when run.sh stops it.
                    p.wait()
                    return
        except OSError:
            pass
        time.sleep(0.001)
    p.kill()
    sys.exit(f"startup: no HTTP answer on port {args.port} within {args.timeout} s")


# ---- propagation ----

def dns_query(qid, name):
    q = struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0)  # RD=0: an authoritative question
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00" + struct.pack(">HH", 1, 1)  # A, IN


def skip_name(msg, i):
    for _ in range(128):  # a name has at most 127 labels
        n = msg[i]
        if n == 0:
            return i + 1
        if n & 0xC0 == 0xC0:
            return i + 2
        i += 1 + n
    raise ValueError("name too long")


def dns_answer(msg):
    """(id, [IPv4 strings]) of a response; raises on garbage."""
    qid, _flags, qd, an = struct.unpack(">HHHH", msg[:8])
    i = 12
    for _ in range(qd):
        i = skip_name(msg, i) + 4
    addrs = []
    for _ in range(an):
        i = skip_name(msg, i)
        rtype, _cls, _ttl, rdlen = struct.unpack(">HHIH", msg[i:i + 10])
        i += 10
        if rtype == 1 and rdlen == 4:
            addrs.append(socket.inet_ntoa(msg[i:i + 4]))
        i += rdlen
    return qid, addrs


def propagation(args):
    names = [l.split("\t", 1) for l in open(args.creds).read().splitlines() if "\t" in l]
    half = len(names) // 2
    pool = names[half:]  # the half S2 changes; S1's half keeps its fixed addresses
    total = int(args.rate * args.seconds)
    if total > len(pool):
        sys.exit(f"propagation: {total} updates need {total} distinct names, have {len(pool)}")
    start = random.randrange(len(pool))
    samples = queue.Queue()
    errors = []
    senders_done = threading.Event()
    t_begin = time.monotonic() + 0.2

    def sender(k0):
        conn = http.client.HTTPConnection("127.0.0.1", args.http, timeout=10)
        for k in range(k0, total, args.senders):
            due = t_begin + k / args.rate  # steady rate: request k is due at k/rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            name, auth = pool[(start + k) % len(pool)]
            addr = f"12.{(k >> 16) & 255}.{(k >> 8) & 255}.{k & 255}"
            try:
                conn.request("GET", f"/?hostname={name}&myipv4={addr}",
                             headers={"Authorization": auth})
                r = conn.getresponse()
                body = r.read()
            except (OSError, http.client.HTTPException) as e:
                errors.append(str(e))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", args.http, timeout=10)
                continue
            t_good = time.monotonic()
            if r.status != 200 or body != b"good":
                errors.append(f"{r.status} {body[:40]!r}")
                continue
            if k % args.sample_every == 0:
                samples.put((name, addr, t_good))
        conn.close()

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(args.senders)]
    for t in threads:
        t.start()

    sent_in = []

    def wait_senders():
        for t in threads:
            t.join()
        sent_in.append(time.monotonic() - t_begin)
        senders_done.set()

    threading.Thread(target=wait_senders, daemon=True).start()

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", args.dns))
    pending = {}  # sample index -> [name, addr, t_good, next_poll]
    by_id = {}    # DNS id -> sample index
    latencies, lost = [], 0
    n_samples, qid = 0, 0
    interval = args.poll_ms / 1000
    hard_end = t_begin + args.seconds + args.timeout + 5
    while time.monotonic() < hard_end:
        while True:
            try:
                name, addr, t_good = samples.get_nowait()
            except queue.Empty:
                break
            pending[n_samples] = [name, addr, t_good, 0.0]
            n_samples += 1
        if not pending and senders_done.is_set() and samples.empty():
            break
        now = time.monotonic()
        for idx, p in list(pending.items()):
            if now - p[2] > args.timeout:
                lost += 1
                del pending[idx]
            elif p[3] <= now:
                qid = (qid + 1) & 0xFFFF
                by_id[qid] = idx
                p[3] = now + interval
                try:
                    sock.send(dns_query(qid, p[0]))
                except OSError:
                    pass
        ready, _, _ = select.select([sock], [], [], interval / 2)
        while ready:
            try:
                msg = sock.recv(4096)
            except OSError:
                break
            t = time.monotonic()
            try:
                rid, addrs = dns_answer(msg)
            except (ValueError, struct.error, IndexError):
                addrs, rid = [], None
            idx = by_id.pop(rid, None)
            p = pending.get(idx)
            if p is not None and p[1] in addrs:
                latencies.append((t - p[2]) * 1000)
                del pending[idx]
            ready, _, _ = select.select([sock], [], [], 0)
    lost += len(pending)
    senders_done.wait(timeout=30)
    rate = total / sent_in[0] if sent_in else 0
    if not latencies:
        print(f"RESULT samples=0 lost={lost} updates={total} errors={len(errors)}")
        return
    latencies.sort()
    q = lambda p: latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))]
    print(f"RESULT samples={len(latencies)} lost={lost} updates={total} errors={len(errors)} "
          f"rate={rate:.0f} "
          f"p50_ms={q(50):.1f} p99_ms={q(99):.1f} max_ms={latencies[-1]:.1f}")
    if errors:
        print(f"first error: {errors[0]}", file=sys.stderr)


# ---- report ----

def parse_results(path):
    """run.sh writes `KEY k=v k=v ...` lines; several lines of one KEY are repetitions."""
    out = {}
    for line in open(path):
        parts = line.split()
        if not parts:
            continue
        kv = {}
        for p in parts[1:]:
            if "=" in p:
                k, v = p.split("=", 1)
                kv[k] = v
        out.setdefault(parts[0], []).append(kv)
    return out


def median(res, key, field):
    vals = []
    for kv in res.get(key, []):
        try:
            vals.append(float(kv[field]))
        except (KeyError, ValueError):
            pass
    return statistics.median(vals) if vals else None


def one(res, key, field, default=None):
    rows = res.get(key)
    return rows[-1].get(field, default) if rows else default


def report(args):
    res = parse_results(args.results)
    rows = []

    def fmt(v, unit, digits=0):
        if v is None:
            return "n/a"
        s = f"{v:,.{digits}f}"
        return f"{s} {unit}".strip()

    def verdict(ok):
        return "n/a" if ok is None else ("pass" if ok else "**FAIL**")

    def ratio_row(label, key, target_pct, unit="req/s"):
        ours, ref = median(res, key + "_ours", "rps"), median(res, key + "_ref", "rps")
        if ours is None or ref is None:
            note = one(res, key + "_na", "why", "not measured").replace("_", " ")
            rows.append((label, f"n/a ({note})", "nginx " + fmt(ref, unit), "–",
                         f"≥ {target_pct} % of nginx", "n/a"))
            return
        r = 100 * ours / ref
        rows.append((label, fmt(ours, unit), "nginx " + fmt(ref, unit), f"{r:.1f} %",
                     f"≥ {target_pct} % of nginx", verdict(r >= target_pct)))

    def limit_row(label, value, unit, limit, digits=1, ref=None):
        rows.append((label, fmt(value, unit, digits), ref or "–", "–",
                     f"≤ {limit:g} {unit}", verdict(None if value is None else value <= limit)))

    reps = one(res, "meta", "reps", "?")
    secs = one(res, "meta", "seconds", "?")
    names = int(one(res, "meta", "names", "0"))
    accounts_only = one(res, "meta", "accounts") == "1"
    sizes = [int(n) for n in one(res, "meta", "s4", "").split(",") if n]
    limited = int(one(res, "meta", "limited", "0"))
    s1 = median(res, "s1_ours", "rps")
    s1_ref = median(res, "s1_ref", "rps")

    def s4_row(label, key):
        v = median(res, key, "rps")
        ok = None if v is None or s1 is None else 100 * v / s1 >= 90
        rows.append((label, fmt(v, "req/s"), "S1 " + fmt(s1, "req/s"),
                     "n/a" if ok is None else f"{100 * v / s1:.1f} %", "≥ 90 % of S1",
                     verdict(ok)))

    ratio_row(f"S1 unchanged updates, keep-alive, 64 conns", "s1", 25)
    if sizes:
        s4_row(f"S4 as S1, one account with {max(sizes):,} names, one token",
               f"s4_a{max(sizes)}")
        s4_row(f"S4 as S1, that account's token limited by --domain to {limited:,} names",
               "s4_limited")
    if accounts_only:
        rows.append(("S1 p99 latency", fmt(median(res, "s1_ours", "p99_ms"), "ms", 2),
                     "nginx " + fmt(median(res, "s1_ref", "p99_ms"), "ms", 2), "–", "–", "–"))
        return account_report(args, res, rows, sizes, s1, s1_ref, names, secs, reps)
    ratio_row(f"S2 changing updates (a write each), 64 conns", "s2", 12)
    ratio_row("S3 HTTPS, new connection per request", "s3", 50, "handshakes/s")
    s2 = median(res, "s2_ours", "rps")
    for key, label, target in (("s5_udp", "S5 signed DNS UPDATEs over UDP (a write each), 16 clients", 100),
                               ("s5_tcp", "S5 the same over TCP, one connection per client", None)):
        v = median(res, key, "rps")
        r = None if v is None or not s2 else 100 * v / s2
        rows.append((label, fmt(v, "req/s"), "S2 " + fmt(s2, "req/s"),
                     "n/a" if r is None else f"{r:.1f} %",
                     f"≥ {target} % of S2" if target else "–",
                     verdict(None if r is None else r >= target) if target else "info"))
    for key, label in (("s1", "S1 p99 latency"), ("s2", "S2 p99 latency")):
        ref = median(res, key + "_ref", "p99_ms")
        limit_row(label, median(res, key + "_ours", "p99_ms"), "ms", 10, 2,
                  ref=None if ref is None else f"nginx {ref:.2f} ms")
    limit_row("S5 UDP p99 latency", median(res, "s5_udp", "p99_ms"), "ms", 10, 2)
    limit_row("S5 TCP p99 latency", median(res, "s5_tcp", "p99_ms"), "ms", 10, 2)
    for key, label in (("s1", "S1"), ("s2", "S2")):
        v = median(res, key + "_ours", "vcs_per_req")
        if v is not None:
            rows.append((f"{label} thread wake-ups per request (voluntary context switches, "
                         "all server threads)", f"{v:.2f}", "–", "–", "–", "info"))
    prop_n = one(res, "prop", "samples", "0")
    prop_lost = one(res, "prop", "lost", "0")
    limit_row(f"Propagation p50, good → NSD answers ({prop_n} samples, {prop_lost} lost)",
              median(res, "prop", "p50_ms"), "ms", 250)
    limit_row("Propagation p99", median(res, "prop", "p99_ms"), "ms", 1000)
    limit_row("Zone render + atomic write, 100,000 names",
              median(res, "render_100000", "total_ms"), "ms", 150)
    if "render_1000000" in res:
        limit_row("Zone render + atomic write, 1,000,000 names",
                  median(res, "render_1000000", "total_ms"), "ms", 1500)
    kb = lambda key, f: (lambda v: None if v is None else v * 1024 / 1e6)(median(res, key, f))
    limit_row(f"RSS idle, {names:,} names (VmRSS)", kb("rss_idle", "kb"), "MB", 20)
    limit_row("RSS peak under S2 (VmHWM)", kb("rss_peak", "kb"), "MB", 64)
    b = median(res, "binary", "bytes")
    limit_row("Stripped release binary", None if b is None else b / 1e6, "MB", 8, 2)
    limit_row(f"Start → first served request, {names:,} names",
              median(res, "startup", "ms"), "ms", 200)

    out = header(res, names, secs, reps)
    table(out, rows)
    account_sizes(out, res, sizes, s1, s1_ref)
    sweep = sorted(k for k in res if k.startswith("sweep_w"))
    if sweep:
        out.append("\nWorker sweep (one run each, req/s / p99):\n")
        out.append("| workers | S1 | S2 |")
        out.append("|---|---|---|")
        ws = sorted({int(k.split("_")[1][1:]) for k in sweep})
        for w in ws:
            cell = []
            for s in ("s1", "s2"):
                kv = res.get(f"sweep_w{w}_{s}", [{}])[-1]
                cell.append(f"{float(kv.get('rps', 'nan')):,.0f} / "
                            f"{float(kv.get('p99_ms', 'nan')):.1f} ms")
            out.append(f"| {w} | {cell[0]} | {cell[1]} |")
    notes = run_notes(res)
    if "import" in res:
        notes.append(f"`import` of {names:,} users + names + tokens: "
                     f"{float(one(res, 'import', 'ms')) / 1000:.1f} s")
    finish(args, out, notes, res)


def header(res, names, secs, reps):
    mode = {"1": " --quick"}.get(one(res, "meta", "quick"), "")
    if one(res, "meta", "accounts") == "1":
        mode = " --accounts"
    return [f"# dedyn-update benchmark — {one(res, 'meta', 'date', '?')}\n",
            f"`bench/run.sh{mode}` on "
            f"{one(res, 'meta', 'host', '?').replace('_', ' ')}; {names:,} names; "
            f"wrk {one(res, 'meta', 'wrk_threads', '?')} threads, 64 connections, "
            f"{secs} s per run, median of {reps}; server workers = "
            f"{one(res, 'meta', 'workers', '?')}; reference: nginx "
            f"{one(res, 'meta', 'nginx', '?')} returning a fixed `200 good`.\n"]


def table(out, rows):
    out.append("| scenario | ours | reference | ratio | target | result |")
    out.append("|---|---|---|---|---|---|")
    for r in rows:
        out.append("| " + " | ".join(r) + " |")


def account_sizes(out, res, sizes, s1, s1_ref):
    """S4 by account size (unchanged updates/s), when more than one size ran."""
    if len(sizes) < 2:
        return
    out.append("\nS4 by account size (one account, one token, unchanged updates):\n")
    out.append("| names in the account | updates/s | % of S1 | % of nginx | p99 |")
    out.append("|---|---|---|---|---|")
    pct = lambda v, of: "n/a" if v is None or not of else f"{100 * v / of:.1f} %"
    for n in sizes:
        v = median(res, f"s4_a{n}", "rps")
        p99 = median(res, f"s4_a{n}", "p99_ms")
        out.append(f"| {n:,} | {'n/a' if v is None else f'{v:,.0f}'} | {pct(v, s1)} | "
                   f"{pct(v, s1_ref)} | {'n/a' if p99 is None else f'{p99:.1f} ms'} |")


def run_notes(res):
    notes = []
    for key in sorted(res):
        for kv in res[key]:
            for field in ("non200", "sock_errors", "errors"):
                if kv.get(field, "0") not in ("0", ""):
                    notes.append(f"{key}: {field}={kv[field]}")
    if "import_accounts" in res:
        notes.append(f"`import` of the S4 accounts ({int(one(res, 'import_accounts', 'names')):,}"
                     f" names): {float(one(res, 'import_accounts', 'ms')) / 1000:.1f} s")
    return notes


def account_report(args, res, rows, sizes, s1, s1_ref, names, secs, reps):
    out = header(res, names, secs, reps)
    table(out, rows)
    account_sizes(out, res, sizes, s1, s1_ref)
    finish(args, out, run_notes(res), res)


def finish(args, out, notes, res):
    if notes:
        out.append("\nNotes:\n")
        out.extend(f"- {n}" for n in notes)
    text = "\n".join(out) + "\n"
    with open(args.out, "w") as f:
        f.write(text)
    print(text)


def ab(args):
    """`run.sh --ab`: S1 and S2 before (an older build) and after (this one),
    measured alternately in the same run; the verdict is within 5 %."""
    res = parse_results(args.results)
    out = [f"# dedyn-update benchmark, before/after — {args.meta}\n",
           f"`BENCH_BASELINE=… bench/run.sh --ab`; {args.label}; wrk, 64 connections; "
           "median of the repetitions, the two builds alternating.\n",
           "| scenario | before | after | after/before | p99 before | p99 after | within 5 % |",
           "|---|---|---|---|---|---|---|"]
    cpu = []
    for key, label in (("s1", "S1 unchanged"), ("s2", "S2 changing")):
        b, a = median(res, f"{key}_before", "rps"), median(res, f"{key}_after", "rps")
        pb, pa = median(res, f"{key}_before", "p99_ms"), median(res, f"{key}_after", "p99_ms")
        if b is None or a is None:
            out.append(f"| {label} | n/a | n/a | n/a | n/a | n/a | n/a |")
            continue
        ratio = a / b
        out.append(f"| {label} | {b:,.0f}/s | {a:,.0f}/s | {100 * ratio:.1f} % | "
                   f"{pb:.1f} ms | {pa:.1f} ms | {'yes' if ratio >= 0.95 else 'NO'} |")
        cb, ca = median(res, f"{key}_before", "cpu_us_per_req"), median(res, f"{key}_after", "cpu_us_per_req")
        if cb and ca:
            cpu.append(f"| {label} | {cb:.0f} µs | {ca:.0f} µs | {100 * ca / cb:.1f} % |")
    if cpu:
        out += ["\nThe server's CPU time per request (utime + stime of the whole process over "
                "the run, divided by its requests; median; on a 2-core machine shared with wrk "
                "this varies less from run to run than req/s):\n",
                "| scenario | before | after | after/before |", "|---|---|---|---|"] + cpu
    ib, ia = median(res, "s1_instr_before", "instr_per_req"), median(res, "s1_instr_after", "instr_per_req")
    if ib and ia:
        out += ["\nInstructions the server executes per S1 request (valgrind's callgrind, user "
                "space, every thread, a wrk run of each build (BENCH_INSTR_SECONDS, 15 s by default); the threads' per-second "
                "background work is included; unlike time, the count does not move with the "
                "machine's other load):\n",
                "| scenario | before | after | after/before |", "|---|---|---|---|",
                f"| S1 unchanged | {ib:,.0f} | {ia:,.0f} | {100 * ia / ib:.1f} % |"]
    out.append("\nEach run (req/s):\n")
    for key in ("s1_before", "s1_after", "s2_before", "s2_after"):
        runs = [f"{float(kv['rps']):,.0f}" for kv in res.get(key, []) if "rps" in kv]
        out.append(f"- {key}: {', '.join(runs)}")
    for key in ("s1_instr_before", "s1_instr_after"):
        runs = [f"{int(kv['instr_per_req']):,}" for kv in res.get(key, []) if "instr_per_req" in kv]
        if runs:
            out.append(f"- {key} (instructions per request): {', '.join(runs)}")
    finish(args, out, run_notes(res), res)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("creds")
    p.add_argument("names")
    p.add_argument("secrets")
    p.add_argument("out")
    p.set_defaults(fn=creds)
    p = sub.add_parser("startup")
    p.add_argument("log")
    p.add_argument("port", type=int)
    p.add_argument("--timeout", type=float, default=30)
    p.add_argument("command", nargs=argparse.REMAINDER)
    p.set_defaults(fn=startup)
    p = sub.add_parser("propagation")
    p.add_argument("--http", type=int, required=True)
    p.add_argument("--dns", type=int, required=True)
    p.add_argument("--creds", required=True)
    p.add_argument("--rate", type=float, default=200)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--sample-every", type=int, default=4)
    p.add_argument("--senders", type=int, default=4)
    p.add_argument("--poll-ms", type=float, default=2)
    p.add_argument("--timeout", type=float, default=10, help="a sample not seen by then is lost")
    p.set_defaults(fn=propagation)
    p = sub.add_parser("report")
    p.add_argument("results")
    p.add_argument("out")
    p.set_defaults(fn=report)
    p = sub.add_parser("ab")
    p.add_argument("results")
    p.add_argument("out")
    p.add_argument("label")
    p.add_argument("meta")
    p.set_defaults(fn=ab)
    args = ap.parse_args()
    if args.cmd == "startup" and args.command[:1] == ["--"]:
        args.command = args.command[1:]
    args.fn(args)


if __name__ == "__main__":
    main()
