#!/usr/bin/env python3
"""bench/report.py OUT [DOCS]: turn the raw outputs of bench/run.sh into OUT/latest.md and the
plot data (OUT/data-<workload>.tsv, OUT/plots.tsv). With DOCS (docs/BENCHMARKS.md), also
replace the block between its `<!-- results:begin -->` and `<!-- results:end -->` lines with
the summary tables of this run."""
import os
import re
import statistics
import sys

OUT = sys.argv[1]
DOCS = sys.argv[2] if len(sys.argv) > 2 else None
RAW = os.path.join(OUT, "raw")


def read(name):
    try:
        with open(os.path.join(RAW, name)) as f:
            return f.read()
    except OSError:
        return ""


META = dict(line.split("=", 1) for line in read("meta.env").splitlines() if "=" in line)
ROUNDS = int(META.get("rounds", "3"))

# ---- compare.sh: medians from its tables (stdout), every round from its log (stderr) ---------
UNITS = {"msgs/s", "MB/s", "KiB/conn", "req/s"}


def compare_tables(mode):
    """{workload index: {server: {column header: cell}}} from compare.sh's markdown tables."""
    tables, idx, header = {}, -1, None
    for line in read(f"compare-{mode}.txt").splitlines():
        if line.startswith("### "):
            idx += 1
            tables[idx] = {}
            header = None
        elif line.startswith("|") and idx >= 0:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if header is None:
                header = cells
            elif not set(cells[0]) <= set("-:"):
                tables[idx][cells[0]] = dict(zip(header, cells))
    return tables


def compare_rounds(mode):
    """{workload index: {server: [value or None per round]}} from compare.sh's log."""
    runs, count, rnd = {}, {}, 0
    for line in read(f"compare-{mode}.txt.err").splitlines():
        m = re.match(r"^round (\d+)/\d+$", line)
        if m:
            rnd = int(m.group(1))
            continue
        m = re.match(r"^    (\S+): (\S+) (\S+)", line)
        if m and m.group(3) in UNITS:
            name = m.group(1)
            w = count.get((rnd, name), 0)
            count[(rnd, name)] = w + 1
            v = None if m.group(2) == "FAILED" else float(m.group(2))
            runs.setdefault(w, {}).setdefault(name, []).append(v)
    return runs


def num(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


# ---- cost/: one line per server ------------------------------------------------------------
def cost_lines(name, kind):
    res = {}
    for line in read(name).splitlines():
        if kind == "echo":
            m = re.match(r"^(\S+)\s+echo depth=\d+\s+instr/line=\s*([\d.]+) \((\d+) lines\)\s+"
                         r"syscalls/line=([\d.]+) \((\d+) lines\)\s*(.*)$", line)
            if m and int(m.group(3)) and int(m.group(5)):
                res[m.group(1)] = {"instr": float(m.group(2)), "sys": float(m.group(4)), "top": m.group(6).strip()}
        elif kind == "http":
            m = re.match(r"^(\S+)\s+http instr/req=\s*([\d.]+) \((\d+) reqs\)\s+"
                         r"syscalls/req=([\d.]+) \((\d+) reqs\)\s*(.*)$", line)
            if m and int(m.group(3)) and int(m.group(5)):
                res[m.group(1)] = {"instr": float(m.group(2)), "sys": float(m.group(4)), "top": m.group(6).strip()}
        else:
            m = re.match(r"^(\S+)\s+bulk conns=\d+ instr/MB=\s*(\d+)\s+reads/MB=\s*([\d.]+) \(avg ([\d.]+) KiB\)\s+"
                         r"sends/MB=\s*([\d.]+) \(avg ([\d.]+) KiB\)\s+failed calls/MB=([\d.]+)", line)
            if m and float(m.group(2)) > 0:
                g = [float(x) for x in m.groups()[1:]]
                res[m.group(1)] = {"instr": g[0], "reads": g[1], "ravg": g[2], "sends": g[3], "savg": g[4],
                                   "fail": g[5], "sys": g[1] + g[3] + g[5],
                                   "top": f"reads {g[1]:.1f}/MB of {g[2]:.0f} KiB, sends {g[3]:.1f}/MB of {g[4]:.0f} KiB"}
    return res


def starved():
    res = {}
    for line in read("starved.txt").splitlines():
        parts = line.split()
        if not parts:
            continue
        kv = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        mbs, us = num(kv.get("MB_per_s")), num(kv.get("srv_us_per_MB"))
        res.setdefault(parts[0], []).append((mbs, us) if mbs is not None and us is not None else None)
    return res


# ---- the workloads -------------------------------------------------------------------------
WORKLOADS = [
    # key, compare mode, table index, title, unit, higher is better, cost file, cost kind, cost unit
    ("echo-d1", "echo", 0, "Echo, 64 connections, 64 B lines, depth 1", "msgs/s", True, "cost-echo-d1.txt", "echo", "line"),
    ("echo-d16", "echo", 1, "Echo, 64 connections, 64 B lines, depth 16", "msgs/s", True, "cost-echo-d16.txt", "echo", "line"),
    ("bulk-1", "bulk", 0, "Bulk echo, 1 connection, 64 KiB lines", "MB/s", True, "cost-bulk-c1.txt", "bulk", "MB"),
    ("bulk-4", "bulk", 1, "Bulk echo, 4 connections, 64 KiB lines", "MB/s", True, "cost-bulk-c4.txt", "bulk", "MB"),
    ("http", "http", 0, "HTTP hello, wrk -t1 -c64 keep-alive", "req/s", True, "cost-http.txt", "http", "req"),
    ("idle", "idle", 0, "Idle connections: RSS per connection (lower is better)", "KiB/conn", False, None, None, None),
]
TABLES = {m: compare_tables(m) for m in ("echo", "bulk", "http", "idle")}
ROUNDRUNS = {m: compare_rounds(m) for m in ("echo", "bulk", "http", "idle")}
STARVED = starved()


def label(name):
    return "**libtstream**" if name == "ours" else name


def fmt(v, unit=None):
    if v is None:
        return "—"
    if unit == "KiB/conn" or abs(v) < 10:
        return f"{v:.3f}" if abs(v) < 1 else f"{v:.2f}"
    return f"{v:,.0f}"


def ratio(a, b):
    return f"{a / b:.2f}×" if a is not None and b else "—"


def collect(wl):
    """{server: {...}} for one workload: median, rounds, compare.sh's columns, cost figures."""
    key, mode, idx, _, _, _, cfile, ckind, _ = wl
    table = TABLES[mode].get(idx, {})
    rounds = ROUNDRUNS[mode].get(idx, {})
    costs = cost_lines(cfile, ckind) if cfile else {}
    data = {}
    for name in list(table) + [n for n in costs if n not in table]:
        row = table.get(name, {})
        vals = [v for v in rounds.get(name, []) if v is not None]
        med = statistics.median(vals) if vals else num(next((row[h] for h in row if h in UNITS), None))
        data[name] = {
            "median": med, "rounds": vals, "failed": len(rounds.get(name, [])) - len(vals),
            "p99": num(row.get("p99 us")),
            "cpu": num(next((row[h] for h in row if h.startswith("srv CPU")), None)),
            "busy": next((row[h] for h in row if h.startswith("CPU0")), ""),
            "notes": row.get("notes", ""), "cost": costs.get(name),
        }
    return data


DATA = {wl[0]: collect(wl) for wl in WORKLOADS}
PEERS_HEAD = ["libev-raw", "libuv", "nginx"]


def best_peer(d):
    peers = {n: v["median"] for n, v in d.items() if n != "ours" and v["median"] is not None}
    return max(peers.items(), key=lambda kv: kv[1]) if peers else (None, None)


# ---- markdown ------------------------------------------------------------------------------
def headline():
    """libtstream against raw libev, libuv, nginx and the best peer, per workload."""
    out = ["| workload | figure | libtstream | raw libev | ours ÷ libev | libuv | ours ÷ libuv | nginx | ours ÷ nginx |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for wl in WORKLOADS:
        key, _, _, _, unit, _, _, _, cunit = wl
        d = DATA[key]
        if "ours" not in d:
            continue
        rows = [(unit + " (median)", lambda v: v["median"])]
        if cunit:
            rows.append((f"instructions/{cunit}", lambda v: v["cost"]["instr"] if v["cost"] else None))
            rows.append((f"system calls/{cunit}", lambda v: v["cost"]["sys"] if v["cost"] else None))
            rows.append((f"srv CPU µs/{'msg' if cunit == 'line' else cunit}", lambda v: v["cpu"]))
        for label, get in rows:
            o = get(d["ours"])
            cells = [key, label, fmt(o, unit)]
            for p in PEERS_HEAD:
                pv = get(d[p]) if p in d else None
                cells += [fmt(pv, unit), ratio(o, pv)]
            out.append("| " + " | ".join(cells) + " |")
    s = STARVED
    if "ours" in s:
        def worst(n):
            v = [x[1] for x in s.get(n, []) if x]
            return max(v) if v else None

        def med(n, i):
            v = [x[i] for x in s.get(n, []) if x]
            return statistics.median(v) if v else None
        for label, get in (("MB/s (median)", lambda n: med(n, 0)), ("srv µs/MB (median)", lambda n: med(n, 1)),
                           ("srv µs/MB (worst run)", worst)):
            o = get("ours")
            cells = ["bulk-starved", label, fmt(o)]
            for p in PEERS_HEAD:
                pv = get(p) if p in s else None
                cells += [fmt(pv), ratio(o, pv)]
            out.append("| " + " | ".join(cells) + " |")
    return out


def target_rows():
    """The engine's targets, each against this run."""
    rows = []

    def add(figure, target, measured, ok):
        verdict = ok if isinstance(ok, str) else "met" if ok else "**missed**" if ok is not None else "not measured"
        rows.append(f"| {figure} | {target} | {measured} | {verdict} |")

    def calls(o, peer):
        """System-call counts move by about 2 % from run to run: closer than that is a tie."""
        if o is None or peer is None:
            return None
        return True if o <= peer else "met (within 2 %)" if o <= peer * 1.02 else False

    def c(key, name, field="instr"):
        v = DATA.get(key, {}).get(name)
        return v["cost"][field] if v and v["cost"] else None
    for key, lim in (("echo-d16", 100), ("echo-d1", 400)):
        o, uv = c(key, "ours"), c(key, "libuv")
        add(f"instructions per line, {key}", f"≤ {lim}", f"{fmt(o)} (libuv {fmt(uv)})", None if o is None else o <= lim)
    for key in ("echo-d1", "echo-d16", "bulk-1", "bulk-4"):
        o, lv = c(key, "ours", "sys"), c(key, "libev-raw", "sys")
        unit = "MB (reads+sends+EAGAIN)" if key.startswith("bulk") else "line"
        add(f"system calls per {unit}, {key}", "≤ raw libev's", f"{fmt(o)} vs {fmt(lv)}", calls(o, lv))
    for key in ("bulk-1", "bulk-4"):
        o, lv = c(key, "ours"), c(key, "libev-raw")
        add(f"instructions per MB, {key}", "≤ raw libev's", f"{fmt(o)} vs {fmt(lv)} ({ratio(o, lv)})",
            None if o is None or lv is None else o <= lv)
        r, s = c(key, "ours", "reads"), c(key, "ours", "sends")
        add(f"sends per MB vs reads per MB, {key}", "within 1.5×", f"{fmt(s)} sends, {fmt(r)} reads",
            None if r is None or s is None else (max(r, s) / max(min(r, s), 1e-9) <= 1.5))
    ow = [x[1] for x in STARVED.get("ours", []) if x]
    lw = [x[1] for x in STARVED.get("libev-raw", []) if x]
    if ow and lw:
        add(f"starved bulk: server µs/MB, worst of {len(ow)} runs", "≤ 1.2× raw libev's",
            f"{fmt(max(ow))} vs {fmt(statistics.median(lw))} ({ratio(max(ow), statistics.median(lw))})",
            max(ow) <= 1.2 * statistics.median(lw))
    o, n = c("http", "ours"), c("http", "nginx")
    add("HTTP instructions per request", "≤ 0.8× nginx's", f"{fmt(o)} vs {fmt(n)} ({ratio(o, n)})",
        None if o is None or n is None else o <= 0.8 * n)
    o, n = c("http", "ours", "sys"), c("http", "nginx", "sys")
    add("HTTP system calls per request", "≤ the peers' (nginx)", f"{fmt(o)} vs {fmt(n)}", calls(o, n))
    idle = DATA["idle"].get("ours", {}).get("median")
    add("idle KiB per connection", "≤ 0.25", fmt(idle, "KiB/conn"), None if idle is None else idle <= 0.25)
    for key in ("echo-d1", "echo-d16"):
        o, lv = DATA[key].get("ours", {}).get("median"), DATA[key].get("libev-raw", {}).get("median")
        add(f"compare.sh {key} msgs/s", "≥ 1.00× raw libev", ratio(o, lv), None if o is None or lv is None else o >= lv)
    for key in ("bulk-1", "bulk-4"):
        d = DATA[key]
        o = d.get("ours", {}).get("median")
        bn, bv = best_peer(d)
        low = min(d.get("ours", {}).get("rounds") or [0])
        add(f"compare.sh {key} MB/s", "≥ the best peer, no round < 0.8× it",
            f"{ratio(o, bv)} of {bn}; worst round {ratio(low, bv)}",
            None if o is None or not bv else (o >= bv and low >= 0.8 * bv))
    o, n = DATA["http"].get("ours", {}).get("median"), DATA["http"].get("nginx", {}).get("median")
    add("compare.sh HTTP req/s", "≥ 1.00× nginx", ratio(o, n), None if o is None or n is None else o >= n)
    return ["| figure | target | this run | |", "|---|---|---|---|"] + rows


def workload_table(wl):
    key, _, _, title, unit, higher, _, _, cunit = wl
    d = DATA[key]
    if not d:
        return []
    o = d.get("ours", {})
    head = f"| server | {unit} median | rounds (min–max) | ours ÷ it |"
    sep = "|---|---:|---:|---:|"
    if cunit:
        head += f" instr/{cunit} | ours ÷ it | syscalls/{cunit} | srv CPU µs/{'msg' if cunit == 'line' else cunit} |"
        sep += "---:|---:|---:|---:|"
        if key != "http" and key.startswith(("echo", "bulk")):
            pass
    if key.startswith(("echo", "http")):
        head += " p99 µs |"
        sep += "---:|"
    head += " CPU0,CPU1 busy % | notes |" if key != "idle" else " notes |"
    sep += "---|---|" if key != "idle" else "---|"
    out = [f"### {title}", "", f"![{key}]({{img}}{key}.png)", "", head, sep]
    for name, v in d.items():
        rr = v["rounds"]
        cells = [label(name), fmt(v["median"], unit),
                 f"{fmt(min(rr), unit)}–{fmt(max(rr), unit)}" if rr else "—",
                 "" if name == "ours" else ratio(o.get("median"), v["median"])]
        if cunit:
            ci = v["cost"]["instr"] if v["cost"] else None
            oi = o["cost"]["instr"] if o.get("cost") else None
            cells += [fmt(ci), "" if name == "ours" else ratio(oi, ci),
                      fmt(v["cost"]["sys"]) if v["cost"] else "—", fmt(v["cpu"])]
        if key.startswith(("echo", "http")):
            cells.append(fmt(v["p99"]))
        if key != "idle":
            cells.append(v["busy"] or "—")
        notes = v["notes"]
        if v["cost"] and v["cost"].get("top"):
            notes = (notes + "; " if notes else "") + v["cost"]["top"]
        cells.append(notes)
        out.append("| " + " | ".join(cells) + " |")
    return out


def starved_table():
    s = STARVED
    if not s:
        return []
    out = ["### Bulk echo, 1 connection, with a busy loop sharing the server's CPU (`cost/bulk_starved.sh`)", "",
           "![bulk-starved]({img}bulk-starved.png)", "",
           "| server | MB/s per run | srv µs/MB per run | srv µs/MB median | worst | ours' worst ÷ its median |",
           "|---|---|---|---:|---:|---:|"]
    ow = [x[1] for x in s.get("ours", []) if x]
    for name, runs in s.items():
        ok = [x for x in runs if x]
        us = [x[1] for x in ok]
        out.append("| " + " | ".join([
            label(name),
            ", ".join(fmt(x[0]) if x else "failed" for x in runs),
            ", ".join(fmt(x[1]) if x else "failed" for x in runs),
            fmt(statistics.median(us)) if us else "—", fmt(max(us)) if us else "—",
            "" if name == "ours" or not us or not ow else ratio(max(ow), statistics.median(us))]) + " |")
    return out


def profiles():
    out = []
    pdir = os.path.join(OUT, "profiles")
    for key in ("echo-d16", "echo-d1", "bulk-1", "http"):
        path = os.path.join(pdir, key + ".txt")
        if not os.path.exists(path):
            continue
        lines = open(path).read().splitlines()
        total = next((ln for ln in lines if "PROGRAM TOTALS" in ln), "")
        entries = [ln for ln in lines if re.match(r"^\s*[\d,]+ \(\s*[\d.]+%\)\s+\S", ln) and "PROGRAM TOTALS" not in ln]
        head = lines[0].split(": ", 1)[-1] if lines else ""
        units = re.search(r"\bmsgs=(\d+)|(\d+) requests in|\bechoed=(\d+)", head)
        what = ""
        if units:
            n = int(next(g for g in units.groups() if g))
            what = (f", {n:,} lines" if units.group(1) else f", {n:,} requests" if units.group(2)
                    else f", {n / 1e6:.0f} MB")
            tot = int(re.sub(r"[^\d]", "", total.split("(")[0]) or 0)
            per = tot / (n / 1e6 if units.group(3) else n) if n else 0
            what += f": {per:,.0f} instructions per {'line' if units.group(1) else 'request' if units.group(2) else 'MB'}"
        out += [f"**{key}** (one window under callgrind{what}); total {total.split('(')[0].strip()} instructions", "", "```"]
        out += [e.rstrip() for e in entries[:12]] + ["```", ""]
    return out


def load_line():
    samples = [float(x.split()[0]) for x in read("load.txt").splitlines() if x.strip()]
    s = f"load average (1 min) at start {META.get('load_start', '?').split()[0]}, at end {META.get('load_end', '?').split()[0]}"
    if samples:
        s += f"; sampled every 10 s: median {statistics.median(samples):.2f}, max {max(samples):.2f}"
    return s + " (this run itself keeps about 2 busy)"


def conditions():
    q = " — **QUICK mode: short windows and small transfers, for checking the harness**" if META.get("quick") == "1" else ""
    return [
        f"- date: {META.get('date', '?')}; commit `{META.get('commit', '?')}`; last change to src/, include/, examples/: "
        f"`{META.get('engine', '?').split(' ', 1)[0]}` ({META.get('engine', '? ?').split(' ', 1)[-1]}…)",
        f"- machine: {META.get('cpu', '?')}, {META.get('nproc', '?')} CPUs; kernel {META.get('kernel', '?')}; {META.get('compiler', '')}",
        f"- rounds: {ROUNDS} (medians over rounds; servers on CPU 0, load on CPU 1){q}",
        f"- load: {load_line()}",
        f"- other busy processes at the end: {META.get('others', '').rstrip(', ') or 'none above 5 %'}",
        f"- build: {META.get('build', '?')}",
    ]


def main():
    notes = [n for n in read("notes.txt").splitlines() if n.strip()]
    summary = ["## libtstream against the peers, same run", "",
               "Ratios are ours ÷ peer: above 1 is better for throughput (msgs/s, MB/s, req/s), "
               "below 1 is better for costs (instructions, system calls, CPU, KiB).", ""]
    summary += headline() + ["", "## The engine's targets, against this run", ""] + target_rows() + [""]
    summary += ["## Per workload", ""]
    for wl in WORKLOADS:
        t = workload_table(wl)
        if t:
            summary += t + [""]
        if wl[0] == "bulk-4":
            t = starved_table()
            if t:
                summary += t + [""]
    body = ["# libtstream benchmark results (bench/run.sh)", ""] + conditions() + [""]
    body += ["Notes (skipped peers, failed runs, fixes): " + ("none" if not notes else "")] + [f"- {n}" for n in notes] + [""]
    body += summary
    body += ["## Profiles of libtstream (callgrind_annotate, self instructions, top entries)", "",
             "Full listings in `profiles/`.", ""] + profiles()
    body += ["## compare.sh tables, as printed", ""]
    for m in ("echo", "bulk", "http", "idle"):
        t = read(f"compare-{m}.txt").strip()
        if t:
            body += ["```", t, "```", ""]
    body += ["## Commands, in the order run", "", "Paths are relative to the repository; `kit/` is the copy of "
             "the benchmark kit built in the build tree; `{PORT}` is a free port.", "", "```"]
    body += read("commands.txt").splitlines() + ["```", ""]
    with open(os.path.join(OUT, "latest.md"), "w") as f:
        f.write("\n".join(body).replace("{img}", ""))

    # plot data: server, value median/min/max, cost median/min/max, colour (1 = ours)
    plots = []
    for wl in WORKLOADS:
        key, _, _, title, unit, _, _, _, cunit = wl
        d = DATA[key]
        if not d:
            continue
        with open(os.path.join(OUT, f"data-{key}.tsv"), "w") as f:
            for name, v in d.items():
                rr = v["rounds"] or ([v["median"]] if v["median"] is not None else [])
                ci = v["cost"]["instr"] if v["cost"] else None
                cells = ["libtstream" if name == "ours" else name] + [("-" if x is None else f"{x:g}") for x in
                                  (v["median"], min(rr) if rr else None, max(rr) if rr else None, ci, ci, ci)]
                f.write("\t".join(cells + ["1" if name == "ours" else "2"]) + "\n")
        plots.append((key, title, f"{unit}, median of {ROUNDS} (bars: min–max)",
                      f"user-space instructions per {cunit} (callgrind)" if cunit else ""))
    if STARVED:
        with open(os.path.join(OUT, "data-bulk-starved.tsv"), "w") as f:
            for name, runs in STARVED.items():
                ok = [x for x in runs if x]
                if not ok:
                    continue
                a, b = [x[0] for x in ok], [x[1] for x in ok]
                cells = ["libtstream" if name == "ours" else name] + [f"{x:g}" for x in (statistics.median(a), min(a), max(a),
                                                     statistics.median(b), min(b), max(b))]
                f.write("\t".join(cells + ["1" if name == "ours" else "2"]) + "\n")
        plots.append(("bulk-starved", "Bulk echo, 1 connection, a busy loop sharing the server CPU",
                      f"MB/s, median of {ROUNDS} runs (bars: min–max)", "server CPU µs per MB (bars: min–max)"))
    with open(os.path.join(OUT, "plots.tsv"), "w") as f:
        for p in plots:
            f.write("\t".join(p) + "\n")

    if DOCS and os.path.exists(DOCS):
        text = open(DOCS).read()
        b, e = "<!-- results:begin -->", "<!-- results:end -->"
        if b in text and e in text:
            block = ["", "Run of " + META.get("date", "?") + "; full output in "
                     "`bench/results/latest.md` (not part of the API reference, so a path, not a link).", ""] + conditions() + [""]
            block += ["Notes (skipped peers, failed runs, fixes): " + ("none" if not notes else "")] + [f"- {n}" for n in notes] + [""]
            block += [ln.replace("## ", "### ", 1) if ln.startswith("## ") else
                      (ln.replace("### ", "#### ", 1) if ln.startswith("### ") else ln) for ln in summary]
            new = text[:text.index(b) + len(b)] + "\n".join(block).replace("{img}", "../bench/results/") + "\n" + text[text.index(e):]
            with open(DOCS, "w") as f:
                f.write(new)


main()
