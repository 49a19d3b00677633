#!/usr/bin/env python3
"""Measurement engine of the end-to-end load benchmark (run it through benches/load/run.sh).

run.sh starts the servers (two real Glances, nginx, the proxy) and describes them in a JSON
file; this program uploads the images, runs every scenario with curl on 127.0.0.1, and prints
one table (Markdown) of MiB/s with each row's ratio to the reference rows, the targets of
issue 5, and writes the report into BENCHMARKS.md between its markers.

Standard library only. Exit status: 0 when every download was complete and correct and the
proxy made exactly one upstream download per cold burst, 1 otherwise (a missed *performance*
target is reported, never an error), 2 on a usage error.
"""
import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import resource
import signal
import statistics
import subprocess
import sys
import threading
import time

MiB = 1 << 20
CLK = os.sysconf("SC_CLK_TCK")
BEGIN = "<!-- loadbench:begin -->"
END = "<!-- loadbench:end -->"
# curl's report of one download; %header{} needs curl >= 7.84
CURL_FMT = ("%{http_code} %{size_download} %{time_total} %{time_starttransfer} "
            "cl=%header{content-length} cs=%header{x-cache-status}\n")


def log(msg):
    print(f"loadbench: {msg}", file=sys.stderr, flush=True)


def parse_size(text):
    """'4M', '64M', '1G', '1048576' -> bytes."""
    m = re.fullmatch(r"\s*(\d+)\s*([KMG]?)(?:i?B)?\s*", text, re.I)
    if not m:
        raise ValueError(f"bad size '{text}' (use e.g. 4M, 64M, 1G)")
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[m.group(2).upper()]


def size_label(n):
    if n % (1 << 30) == 0:
        return f"{n >> 30} GiB"
    if n % MiB == 0:
        return f"{n >> 20} MiB"
    return f"{n} B"


# ----------------------------------------------------------------------------- processes
def pids_of(master):
    """A server's master pid and its direct children (uWSGI / nginx workers)."""
    out = {master}
    try:
        r = subprocess.run(["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True,
                           text=True, timeout=10)
        out.update(int(x) for x in r.stdout.split())
    except (subprocess.SubprocessError, ValueError):
        pass
    return out


def cpu_ticks(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total


def system_busy_ticks():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...
    return v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)


def status_kib(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def process_alive(pid):
    """True while pid runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def reset_peak_rss(pid):
    """Resets VmHWM (Linux: '5' > clear_refs); False when not allowed."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class RssSampler(threading.Thread):
    """Polls VmRSS every 20 ms: a cross-check of VmHWM (and the only figure if clear_refs fails)."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0, threading.Event()

    def run(self):
        while not self.stop.is_set():
            v = status_kib(self.pid, "VmRSS")
            if v is not None:
                self.peak = max(self.peak, v)
            self.stop.wait(0.02)


# ----------------------------------------------------------------------------- http helpers
# Extra curl arguments for every request (the TLS phase adds its CA certificate).
CURL_EXTRA = []


def curl(args, timeout=120):
    r = subprocess.run(["curl", "-s", "--max-time", str(timeout)] + CURL_EXTRA + args, capture_output=True,
                       text=True, timeout=timeout + 30)
    return r.stdout


def http_status(method, url, headers=(), timeout=60):
    args = ["-o", "/dev/null", "-w", "%{http_code}", "-X", method]
    for h in headers:
        args += ["-H", h]
    return curl(args + [url], timeout)


def get_json(url, headers=()):
    args = []
    for h in headers:
        args += ["-H", h]
    out = curl(args + [url])
    try:
        return json.loads(out)
    except ValueError:
        return None


# ----------------------------------------------------------------------------- the bench
class Bench:
    def __init__(self, env, opts):
        self.env, self.o = env, opts
        self.errors = []
        self.samples = []        # every sample, raw
        self.rows = {}           # (scenario, size, clients) -> row dict
        self.order = []
        self.ids = {}            # (glance, size) -> image id
        self.g_up = f"http://127.0.0.1:{env['glance_upstream']['port']}"
        self.g_cache = f"http://127.0.0.1:{env['glance_cache']['port']}"
        self.nginx = f"http://127.0.0.1:{env['nginx']['port']}"
        self.proxy = f"http://127.0.0.1:{env['proxy']['port']}"
        self.nginx_tls = f"https://127.0.0.1:{env['tls']['nginx_port']}" if env.get("tls") else None
        self.admin = [f"X-Auth-Token: {env['proxy']['admin_token']}"]
        self.stamp = str(int(time.time()))
        self.nonce = 0
        self.other_cpu = []      # (other ticks, wall) per sample
        self.clear_refs_ok = None
        self.fill_pending = {}   # (server, size) -> a miss ran and its commit may be pending
        self.scrub_idle_cpu = []  # the proxy's CPU % with the scrubber running and no client

    def error(self, msg):
        log("ERROR: " + msg)
        self.errors.append(msg)

    # -- setup ---------------------------------------------------------------------------
    def upload(self, base, path, name):
        doc = json.dumps({"name": name, "disk_format": "raw", "container_format": "bare"})
        out = curl(["-X", "POST", "-H", "Content-Type: application/json", "-d", doc,
                    f"{base}/v2/images"])
        try:
            iid = json.loads(out)["id"]
        except (ValueError, KeyError):
            raise SystemExit(f"loadbench: cannot create an image on {base}: {out[:300]}")
        t0 = time.perf_counter()
        code = curl(["-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT",
                     "-H", "Content-Type: application/octet-stream", "-T", path,
                     f"{base}/v2/images/{iid}/file"], timeout=1800)
        dt = time.perf_counter() - t0
        if code != "204":
            raise SystemExit(f"loadbench: upload of {path} to {base} answered {code}")
        for _ in range(300):
            doc = get_json(f"{base}/v2/images/{iid}")
            if doc and doc.get("status") == "active":
                break
            time.sleep(0.1)
        else:
            raise SystemExit(f"loadbench: image {iid} on {base} never became active")
        log(f"uploaded {size_label(os.path.getsize(path))} to {base} as {iid} "
            f"({os.path.getsize(path) / MiB / dt:.0f} MiB/s)")
        return iid

    def file_for(self, size):
        return os.path.join(self.env["data_dir"], f"image-{size}.bin")

    def setup_images(self, sizes):
        for size in sizes:
            path = self.file_for(size)
            if not os.path.exists(path) or os.path.getsize(path) != size:
                log(f"writing {size_label(size)} of random bytes to {path}")
                with open("/dev/urandom", "rb") as src, open(path, "wb") as dst:
                    left = size
                    while left:
                        chunk = src.read(min(left, 4 * MiB))
                        dst.write(chunk)
                        left -= len(chunk)
            self.ids[("up", size)] = self.upload(self.g_up, path, f"loadbench-{size}")
            self.ids[("cache", size)] = self.upload(self.g_cache, path, f"loadbench-{size}")

    def verify_bytes(self, size):
        """One download per path, compared byte for byte (md5) with the source (untimed)."""
        want = md5_of_file(self.file_for(size))
        up, ca = self.ids[("up", size)], self.ids[("cache", size)]
        self.evict_proxy(size)
        self.evict_glance(size)
        checks = [("direct upstream", f"{self.g_up}/v2/images/{up}/file"),
                  ("nginx cold", f"{self.nginx}/v2/images/{up}/file?verify={self.stamp}"),
                  ("nginx warm", f"{self.nginx}/v2/images/{up}/file?verify={self.stamp}"),
                  ("Glance cache miss", f"{self.g_cache}/v2/images/{ca}/file"),
                  ("proxy miss", f"{self.proxy}/v2/images/{up}/file")]
        for name, url in checks:
            got = md5_of_url(url)
            if got != want:
                self.error(f"{name} ({size_label(size)}): md5 {got} != source {want}")
        self.ensure_glance_cached(size)
        self.ensure_proxy_cached(size)
        for name, url in [("Glance cache hit", f"{self.g_cache}/v2/images/{ca}/file"),
                          ("proxy hit", f"{self.proxy}/v2/images/{up}/file")]:
            got = md5_of_url(url)
            if got != want:
                self.error(f"{name} ({size_label(size)}): md5 {got} != source {want}")
        a, b = range_of(size)
        with open(self.file_for(size), "rb") as f:
            f.seek(a)
            part = hashlib.md5(f.read(b - a + 1)).hexdigest()
        for name, base in [("direct upstream range", self.g_up), ("proxy range hit", self.proxy)]:
            got = md5_of_url(f"{base}/v2/images/{up}/file", [f"Range: bytes={a}-{b}"])
            if got != part:
                self.error(f"{name} ({size_label(size)}): md5 {got} != source bytes {a}-{b} {part}")
        log(f"{size_label(size)}: every path returned the source bytes (md5 {want})")

    # -- cache state -----------------------------------------------------------------------
    def proxy_cached(self, size):
        doc = get_json(f"{self.proxy}/v2/cache", self.admin)
        iid = self.ids[("up", size)]
        return bool(doc) and any(c.get("image_id") == iid for c in doc.get("cached_images", []))

    def glance_cached(self, size):
        doc = get_json(f"{self.g_cache}/v2/cache")
        iid = self.ids[("cache", size)]
        return bool(doc) and any(c.get("image_id") == iid for c in doc.get("cached_images", []))

    def settle(self, cached, what):
        """After a miss the client has every byte before the fill's commit (fsync + rename)
        is done; a DELETE in that window can be overtaken by the commit. Wait for it first."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if cached():
                return
            time.sleep(0.05)
        self.error(f"{what}: a completed miss was not cached within 120 s")

    def evict_proxy(self, size):
        iid = self.ids[("up", size)]
        if self.fill_pending.pop(("proxy", size), False):
            self.settle(lambda: self.proxy_cached(size), "proxy")
        code = http_status("DELETE", f"{self.proxy}/v2/cache/{iid}", self.admin)
        if code not in ("204", "404"):
            self.error(f"proxy DELETE /v2/cache/{iid} answered {code}")
        if self.proxy_cached(size):
            self.error(f"proxy still lists {iid} after DELETE /v2/cache")

    def evict_glance(self, size):
        iid = self.ids[("cache", size)]
        if self.fill_pending.pop(("glance", size), False):
            self.settle(lambda: self.glance_cached(size), "Glance")
        code = http_status("DELETE", f"{self.g_cache}/v2/cache/{iid}")
        if code not in ("204", "404"):
            self.error(f"Glance DELETE /v2/cache/{iid} answered {code}")

    def _ensure(self, cached, url, what):
        for attempt in range(3):
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if cached():
                    return
                time.sleep(0.1)
            curl(["-o", "/dev/null", url], timeout=self.o.curl_timeout)
        self.error(f"{what} is not cached after 3 downloads")

    def ensure_proxy_cached(self, size, warm=False):
        url = f"{self.proxy}/v2/images/{self.ids[('up', size)]}/file"
        self._ensure(lambda: self.proxy_cached(size), url, "proxy")
        if warm:
            # one download just before: the proxy remembers that this caller may download
            # the image (authorization_cache_ttl), as for a caller downloading repeatedly
            curl(["-o", "/dev/null", url], timeout=self.o.curl_timeout)

    def ensure_glance_cached(self, size):
        self._ensure(lambda: self.glance_cached(size),
                     f"{self.g_cache}/v2/images/{self.ids[('cache', size)]}/file", "Glance")

    # -- a fresh proxy process (for the memory rows) ---------------------------------------
    def restart_proxy(self, extra_env=None, url=None):
        """Stops the proxy (SIGTERM) and starts it again with the same configuration and cache
        directory, so that a row's peak RSS is that row's alone (the allocator keeps memory a
        previous burst used). `extra_env` overrides options (GLANCE_CACHE__PROXY__...). The new
        pid goes to the pid file run.sh's cleanup reads."""
        px = self.env["proxy"]
        for (server, size), pending in list(self.fill_pending.items()):
            if server == "proxy" and pending:   # let a running commit finish first
                self.settle(lambda size=size: self.proxy_cached(size), "proxy")
        try:
            os.kill(px["pid"], signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and process_alive(px["pid"]):
            time.sleep(0.05)
        if process_alive(px["pid"]):
            os.kill(px["pid"], signal.SIGKILL)
        with open(px["log"], "ab") as logf:
            p = subprocess.Popen(px["cmd"], stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                 env=dict(os.environ, RUST_LOG=px["rust_log"], **(extra_env or {})))
        px["pid"] = p.pid
        if url:  # the restarted proxy answers here (https for the TLS rows)
            self.proxy = url
        with open(px["pidfile"], "w") as f:
            f.write(f"{p.pid}\n")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if p.poll() is not None:
                raise SystemExit(f"loadbench: the restarted proxy exited with {p.returncode} (log: {px['log']})")
            if http_status("GET", f"{self.proxy}/versions", timeout=2) in ("200", "300"):
                return
            time.sleep(0.1)
        raise SystemExit(f"loadbench: the restarted proxy does not answer (log: {px['log']})")

    # -- upstream download count (the upstream Glance's uWSGI request log) -----------------
    def log_offset(self):
        try:
            return os.path.getsize(self.env["glance_upstream"]["request_log"])
        except OSError:
            return 0

    def upstream_downloads(self, iid, offset):
        """Complete downloads (status 200) of image iid that the upstream logged after offset.
        uWSGI logs a request when it ends: wait until the count is stable for 0.5 s."""
        pat = re.compile(r"\] GET /v2/images/" + re.escape(iid)
                         + r"/file(?:\?\S*)? => generated \d+ bytes in \d+ msecs \(HTTP/1\.[01] 200\)")
        path = self.env["glance_upstream"]["request_log"]
        last, stable_since, deadline = -1, time.monotonic(), time.monotonic() + 10
        while time.monotonic() < deadline:
            with open(path, "rb") as f:
                f.seek(offset)
                n = sum(1 for line in f.read().decode("utf-8", "replace").splitlines()
                        if pat.search(line))
            if n != last:
                last, stable_since = n, time.monotonic()
            elif time.monotonic() - stable_since >= 0.5:
                break
            time.sleep(0.1)
        return last

    # -- one sample ------------------------------------------------------------------------
    def sample(self, sc, size, clients):
        """Runs `clients` curls at once against sc's URL; returns the sample dict."""
        groups = {g: pids_of(self.env[g]["pid"]) for g in sc["groups"]}
        proxy_pid = self.env["proxy"]["pid"]
        is_proxy = sc["server"] == "proxy"
        sampler = None
        if is_proxy:
            rss_before = status_kib(proxy_pid, "VmRSS")
            ok = reset_peak_rss(proxy_pid)
            if self.clear_refs_ok is None:
                self.clear_refs_ok = ok
            sampler = RssSampler(proxy_pid)
            sampler.start()
        offset = self.log_offset() if sc.get("count") == "upstream" else None
        urls = [sc["url"](size, k) for k in range(clients)]
        hdrs = sc.get("headers", lambda k: [])
        c0 = {g: cpu_ticks(p) for g, p in groups.items()}
        s0 = system_busy_ticks()
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        procs = []
        for k, u in enumerate(urls):
            args = ["curl", "-s", "-o", "/dev/null", "--max-time", str(self.o.curl_timeout),
                    "-w", CURL_FMT] + CURL_EXTRA + sc.get("curl_args", [])
            for h in hdrs(k):
                args += ["-H", h]
            procs.append(subprocess.Popen(args + [u], stdout=subprocess.PIPE, text=True))
        outs = []
        for p in procs:
            out, _ = p.communicate()
            outs.append((time.perf_counter() - t0, out.split()))
        wall = time.perf_counter() - t0
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        s1 = system_busy_ticks()
        c1 = {g: cpu_ticks(p) for g, p in groups.items()}
        if sampler:
            sampler.stop.set()
            sampler.join()
        client_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        server_ticks = sum(c1[g] - c0[g] for g in groups)
        self.other_cpu.append((max(0, (s1 - s0) - server_ticks - client_cpu * CLK) / CLK, wall))

        want_code = sc.get("expect_status", 200)
        want_bytes = sc.get("expect_bytes", lambda size: size)(size)
        clients_out, ok = [], True
        for _, fields in outs:
            d = {"code": 0, "bytes": 0, "time": 0.0, "ttfb": 0.0, "cl": "", "cs": ""}
            try:
                d.update(code=int(fields[0]), bytes=int(fields[1]), time=float(fields[2]),
                         ttfb=float(fields[3]))
                for f in fields[4:]:
                    k, _, v = f.partition("=")
                    d[k] = v
            except (IndexError, ValueError):
                pass
            if d["code"] != want_code or d["bytes"] != want_bytes:
                ok = False
            clients_out.append(d)
        if not ok:
            bad = [f"{d['code']}/{d['bytes']}B" for d in clients_out
                   if d["code"] != want_code or d["bytes"] != want_bytes]
            self.error(f"{sc['label']} {size_label(size)} x{clients}: incomplete or failed "
                       f"downloads (status/bytes, want {want_code}/{want_bytes}B): {', '.join(bad[:8])}")
        total = sum(d["bytes"] for d in clients_out)
        if clients == 1:
            t = clients_out[0]["time"] or wall
            mibps = clients_out[0]["bytes"] / t / MiB if t else 0.0
        else:
            mibps = total / wall / MiB
        s = {"scenario": sc["key"], "size": size, "clients": clients, "ok": ok, "wall": wall,
             "last_client_s": max(t for t, _ in outs), "mibps": mibps, "bytes": total,
             "time_ms": statistics.median(d["time"] for d in clients_out) * 1000,
             "ttfb_ms": statistics.median(d["ttfb"] for d in clients_out) * 1000,
             "server_cpu_pct": {g: 100 * (c1[g] - c0[g]) / CLK / wall for g in groups},
             "client_cpu_pct": 100 * client_cpu / wall, "clients_out": clients_out}
        if offset is not None:
            s["upstream_downloads"] = self.upstream_downloads(self.ids[("up", size)], offset)
        elif sc.get("count") == "no-content-length":
            # Glance's own cache: a response without Content-Length was read from the store
            s["upstream_downloads"] = sum(1 for d in clients_out if not d["cl"])
        if sc.get("expect_cache_status"):
            miss = [d["cs"] for d in clients_out if d["cs"] != sc["expect_cache_status"]]
            if miss:
                self.error(f"{sc['label']}: X-Cache-Status {miss[:4]} (want {sc['expect_cache_status']})")
        if sc.get("expect_content_length"):
            served_from_store = sum(1 for d in clients_out if not d["cl"])
            if served_from_store:
                self.error(f"{sc['label']}: {served_from_store} responses were not Glance cache hits")
        if is_proxy:
            hwm = status_kib(proxy_pid, "VmHWM") if self.clear_refs_ok else None
            s["proxy_peak_rss_kib"] = max(hwm or 0, sampler.peak)
            s["proxy_rss_before_kib"] = rss_before or 0
            if status_kib(proxy_pid, "VmRSS") is None:
                self.error("the proxy process is gone")
        if sc["server"] == "proxy" and sc["kind"] == "miss" and s.get("upstream_downloads") != 1:
            self.error(f"{sc['label']} {size_label(size)} x{clients}: the upstream logged "
                       f"{s.get('upstream_downloads')} downloads of the image, want exactly 1")
        if sc["kind"] == "miss" and sc["server"] in ("proxy", "glance"):
            self.fill_pending[(sc["server"], size)] = True
        self.samples.append(s)
        if self.o.sync:
            os.sync()   # write back the fill's dirty pages now, not during the next sample
        return s

    def record(self, sc, size, clients, s):
        key = (sc["key"], size, clients)
        if key not in self.rows:
            self.rows[key] = {"sc": sc, "size": size, "clients": clients, "samples": []}
            self.order.append(key)
        self.rows[key]["samples"].append(s)
        print(f"  {sc['label']:<58} {size_label(size):>7} x{clients:<3} {s['mibps']:9.1f} MiB/s  "
              f"last {s['last_client_s']:6.2f}s  ttfb {s['ttfb_ms']:6.1f}ms"
              + (f"  upstream GETs {s['upstream_downloads']}" if "upstream_downloads" in s else "")
              + (f"  peak RSS {s['proxy_peak_rss_kib'] / 1024:.1f} MiB" if "proxy_peak_rss_kib" in s else ""),
              file=sys.stderr, flush=True)

    # -- scenarios -------------------------------------------------------------------------
    def scenarios(self):
        up = lambda size: self.ids[("up", size)]           # noqa: E731
        ca = lambda size: self.ids[("cache", size)]        # noqa: E731

        def nonce():
            self.nonce += 1
            return self.nonce

        def cold_key(prefix):
            # every sample gets a new nginx cache key; the clients of one sample share it
            state = {}

            def prep(size, rep, clients):
                state["k"] = f"{prefix}-{self.stamp}-{size}-{clients}-{rep}"

            def url(size, k):
                return f"{self.nginx}/v2/images/{up(size)}/file?cold={state['k']}"
            return prep, url

        nginx_cold_prep, nginx_cold_url = cold_key("c")
        size_now = [0]   # the size of the row being measured (for the Range header)

        def range_header(size):
            a, b = range_of(size)
            return f"Range: bytes={a}-{b}"
        G_UP, G_CA, NGX, PRX = "glance_upstream", "glance_cache", "nginx", "proxy"
        return [
            dict(key="ceiling", label="ceiling: nginx serving the file itself (no proxying)",
                 server="nginx", kind="ceiling", groups=[NGX],
                 url=lambda size, k: f"{self.nginx}/static/{os.path.basename(self.file_for(size))}"),
            dict(key="direct", label="direct upstream (Glance, no cache)", server="glance",
                 kind="direct", groups=[G_UP],
                 url=lambda size, k: f"{self.g_up}/v2/images/{up(size)}/file"),
            dict(key="nginx_cold", label="nginx proxy_cache cold (tuned, proxy_cache_lock)",
                 server="nginx", kind="miss", groups=[NGX, G_UP], prep=nginx_cold_prep,
                 url=nginx_cold_url, count="upstream"),
            dict(key="nginx_warm", label="nginx proxy_cache warm (tuned)", server="nginx",
                 kind="hit", groups=[NGX, G_UP], expect_cache_status="HIT",
                 url=lambda size, k: f"{self.nginx}/v2/images/{up(size)}/file?warm={self.stamp}"),
            dict(key="glance_miss", label="Glance own cache miss", server="glance", kind="miss",
                 groups=[G_CA], prep=lambda size, rep, clients: self.evict_glance(size),
                 count="no-content-length",
                 url=lambda size, k: f"{self.g_cache}/v2/images/{ca(size)}/file"),
            dict(key="glance_hit", label="Glance own cache hit", server="glance", kind="hit",
                 groups=[G_CA], prep=lambda size, rep, clients: self.ensure_glance_cached(size),
                 expect_content_length=True,
                 url=lambda size, k: f"{self.g_cache}/v2/images/{ca(size)}/file"),
            dict(key="proxy_miss", label="glance-cache-proxy miss (fill + MD5 + SHA-512 verify)",
                 server="proxy", kind="miss", groups=[PRX, G_UP], count="upstream",
                 prep=lambda size, rep, clients: self.evict_proxy(size),
                 url=lambda size, k: f"{self.proxy}/v2/images/{up(size)}/file"),
            dict(key="proxy_hit", label="glance-cache-proxy hit", server="proxy", kind="hit",
                 groups=[PRX, G_UP], count="upstream",
                 prep=lambda size, rep, clients: self.ensure_proxy_cached(size, warm=True),
                 url=lambda size, k: f"{self.proxy}/v2/images/{up(size)}/file"),
            dict(key="proxy_hit_probe",
                 label="glance-cache-proxy hit, authorization probe every request",
                 server="proxy", kind="hit", groups=[PRX, G_UP], single_only=True,
                 prep=lambda size, rep, clients: self.ensure_proxy_cached(size),
                 # a new caller identity each time: no remembered authorization
                 headers=lambda k: [f"X-Loadbench-Caller: {self.stamp}-{nonce()}"],
                 url=lambda size, k: f"{self.proxy}/v2/images/{up(size)}/file"),
            dict(key="proxy_hit_scrub",
                 label="glance-cache-proxy hit, scrubber reading at its default rate (8 MiB/s)",
                 server="proxy", kind="hit", groups=[PRX, G_UP], phase="scrub",
                 prep=lambda size, rep, clients: self.ensure_proxy_cached(size, warm=True),
                 url=lambda size, k: f"{self.proxy}/v2/images/{up(size)}/file"),
            dict(key="proxy_hit_noscrub", label="glance-cache-proxy hit, scrubber off",
                 server="proxy", kind="hit", groups=[PRX, G_UP], phase="scrub",
                 prep=lambda size, rep, clients: self.ensure_proxy_cached(size, warm=True),
                 url=lambda size, k: f"{self.proxy}/v2/images/{up(size)}/file"),
            dict(key="nginx_warm_tls", label="nginx proxy_cache warm over TLS (HTTP/1.1)",
                 server="nginx", kind="hit", groups=[NGX, G_UP], phase="tls",
                 expect_cache_status="HIT", curl_args=["--http1.1"],
                 url=lambda size, k: f"{self.nginx_tls}/v2/images/{up(size)}/file?warm={self.stamp}"),
            dict(key="proxy_hit_tls", label="glance-cache-proxy hit over TLS (HTTP/1.1)",
                 server="proxy", kind="hit", groups=[PRX, G_UP], phase="tls", curl_args=["--http1.1"],
                 prep=lambda size, rep, clients: self.ensure_proxy_cached(size, warm=True),
                 url=lambda size, k: f"{self.proxy}/v2/images/{up(size)}/file"),
            dict(key="direct_range", label="1 MiB range: direct upstream (Glance)", server="glance",
                 kind="range", groups=[G_UP], single_only=True, expect_status=206,
                 expect_bytes=lambda size: range_of(size)[1] - range_of(size)[0] + 1,
                 headers=lambda k: [range_header(size_now[0])],
                 prep=lambda size, rep, clients: size_now.__setitem__(0, size),
                 url=lambda size, k: f"{self.g_up}/v2/images/{up(size)}/file"),
            dict(key="proxy_range", label="1 MiB range: glance-cache-proxy range hit", server="proxy",
                 kind="range", groups=[PRX, G_UP], single_only=True, expect_status=206,
                 expect_bytes=lambda size: range_of(size)[1] - range_of(size)[0] + 1,
                 headers=lambda k: [range_header(size_now[0])],
                 prep=lambda size, rep, clients: (size_now.__setitem__(0, size),
                                                  self.ensure_proxy_cached(size, warm=True)),
                 url=lambda size, k: f"{self.proxy}/v2/images/{up(size)}/file"),
            dict(key="proxy_range_probe", label="1 MiB range: proxy range hit, authorization probe every request",
                 server="proxy", kind="range", groups=[PRX, G_UP], single_only=True, expect_status=206,
                 expect_bytes=lambda size: range_of(size)[1] - range_of(size)[0] + 1,
                 headers=lambda k: [range_header(size_now[0]), f"X-Loadbench-Caller: {self.stamp}-{nonce()}"],
                 prep=lambda size, rep, clients: (size_now.__setitem__(0, size),
                                                  self.ensure_proxy_cached(size)),
                 url=lambda size, k: f"{self.proxy}/v2/images/{up(size)}/file"),
        ]

    def run(self):
        o = self.o
        sizes = o.sizes
        self.setup_images(sizes)
        for size in sizes:
            self.verify_bytes(size)
        scs = self.scenarios()
        for size in sizes:
            log(f"== {size_label(size)}: {o.runs} rounds of {len(scs)} scenarios x (1, {o.parallel}) clients")
            curl(["-o", "/dev/null", f"{self.nginx}/v2/images/{self.ids[('up', size)]}/file?warm={self.stamp}"],
                 timeout=o.curl_timeout)
            for rep in range(o.runs):
                for sc in scs:
                    if sc.get("phase"):
                        continue
                    for clients in ([1] if sc.get("single_only") else [1, o.parallel]):
                        if sc.get("prep"):
                            sc["prep"](size, rep, clients)
                        self.record(sc, size, clients, self.sample(sc, size, clients))
        self.scrub_phase(scs)
        self.tls_phase(scs)
        big = o.big_size
        extra = [n for n in o.concurrency if n not in (1, o.parallel)]
        if extra and big not in sizes:
            self.setup_images([big])
            self.verify_bytes(big)
        for n in extra:
            log(f"== {n} concurrent requests, {size_label(big)}: {o.big_runs} round(s)")
            for rep in range(o.big_runs):
                for key in ("nginx_cold", "glance_miss", "proxy_miss", "proxy_hit"):
                    sc = next(s for s in scs if s["key"] == key)
                    if sc["server"] == "proxy":
                        self.restart_proxy()
                    if sc.get("prep"):
                        sc["prep"](big, 100 + rep, n)
                    self.record(sc, big, n, self.sample(sc, big, n))

    def scrub_phase(self, scs):
        """Hits of the largest image with the scrubber hashing the cache at its default rate
        (scrub_interval = 0: it never runs out of due entries) and with it off, alternately,
        each on a fresh proxy; and the scrubber's own CPU with no client at all."""
        size = max(self.o.sizes)
        on = {"GLANCE_CACHE__PROXY__SCRUB_INTERVAL": "0"}
        off = {"GLANCE_CACHE__PROXY__SCRUB_RATE": "0"}
        by_key = {sc["key"]: sc for sc in scs}
        clients, per_round = self.o.parallel, self.o.scrub_samples
        log(f"== scrub cost, {size_label(size)}: {self.o.runs} rounds x {per_round} samples of {clients} "
            "concurrent hits with and without the scrubber, alternately")
        for rep in range(self.o.runs):
            order = (("proxy_hit_scrub", on), ("proxy_hit_noscrub", off))
            # alternate which setting goes first: drift in the machine's speed cancels out
            for key, env in (order if rep % 2 == 0 else order[::-1]):
                sc = by_key[key]
                self.restart_proxy(env)
                if key == "proxy_hit_scrub":
                    self.scrub_idle_cpu.append(self.idle_proxy_cpu(3.0))
                sc["prep"](size, rep, clients)
                for _ in range(per_round):
                    self.record(sc, size, clients, self.sample(sc, size, clients))
        self.restart_proxy()

    def tls_phase(self, scs):
        """Hits of the largest image over TLS (one certificate for both, HTTP/1.1): the proxy
        restarted with tls_cert_file/tls_key_file, and nginx's TLS server on the same cache
        zone, in rounds; the plain-HTTP hit rows of the same run are the reference."""
        tls = self.env.get("tls")
        if not tls:
            return
        size = max(self.o.sizes)
        by_key = {sc["key"]: sc for sc in scs}
        plain = self.proxy
        log(f"== TLS, {size_label(size)}: {self.o.runs} rounds of proxy and nginx hits over TLS")
        CURL_EXTRA[:] = ["--cacert", tls["cert"]]
        try:
            self.restart_proxy({"GLANCE_CACHE__PROXY__TLS_CERT_FILE": tls["cert"],
                                "GLANCE_CACHE__PROXY__TLS_KEY_FILE": tls["key"]},
                               url=plain.replace("http://", "https://"))
            # nginx's TLS server keys its cache by scheme: fill its entry once
            curl(["-o", "/dev/null", f"{self.nginx_tls}/v2/images/{self.ids[('up', size)]}/file?warm={self.stamp}"],
                 timeout=self.o.curl_timeout)
            for rep in range(self.o.runs):
                for key in ("proxy_hit_tls", "nginx_warm_tls"):
                    sc = by_key[key]
                    for clients in (1, self.o.parallel):
                        if sc.get("prep"):
                            sc["prep"](size, rep, clients)
                        self.record(sc, size, clients, self.sample(sc, size, clients))
        finally:
            self.restart_proxy(url=plain)
            CURL_EXTRA[:] = []

    def idle_proxy_cpu(self, seconds):
        """The proxy's CPU (% of one core) over `seconds` with no client."""
        pids = pids_of(self.env["proxy"]["pid"])
        c0, t0 = cpu_ticks(pids), time.perf_counter()
        time.sleep(seconds)
        return 100 * (cpu_ticks(pids) - c0) / CLK / (time.perf_counter() - t0)

    # -- report ----------------------------------------------------------------------------
    def summary(self, key):
        r = self.rows[key]
        ss = r["samples"]
        m = [s["mibps"] for s in ss]
        out = dict(median=statistics.median(m), lo=min(m), hi=max(m), n=len(ss),
                   wall=statistics.median(s["last_client_s"] for s in ss),
                   ttfb=statistics.median(s["ttfb_ms"] for s in ss),
                   time_ms=statistics.median(s["time_ms"] for s in ss),
                   client_cpu=statistics.median(s["client_cpu_pct"] for s in ss))
        if all("upstream_downloads" in s for s in ss):
            out["up"] = [s["upstream_downloads"] for s in ss]
        groups = ss[0]["server_cpu_pct"].keys()
        out["cpu"] = {g: statistics.median(s["server_cpu_pct"][g] for s in ss) for g in groups}
        if all("proxy_peak_rss_kib" in s for s in ss):
            out["rss_mib"] = max(s["proxy_peak_rss_kib"] for s in ss) / 1024
            out["rss_before_mib"] = min(s["proxy_rss_before_kib"] for s in ss) / 1024
        return out

    def ref(self, key, size, clients):
        k = (key, size, clients)
        return self.summary(k)["median"] if k in self.rows else None

    def table(self):
        short = {"glance_upstream": "glance", "glance_cache": "glance", "nginx": "nginx",
                 "proxy": "proxy"}
        lines = ["| scenario | image | clients | **MiB/s** (median) | min–max | runs | × direct | × nginx "
                 "| last client s | TTFB ms | upstream GETs | server CPU % | curl CPU % | proxy peak RSS MiB |",
                 "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        keys = sorted(self.order, key=lambda k: (k[1], k[2],
                                                 [s["key"] for s in self.scenarios()].index(k[0])))
        for key in keys:
            sc, size, clients = self.rows[key]["sc"], key[1], key[2]
            s = self.summary(key)
            ref_key = "direct_range" if sc["kind"] == "range" else "direct"
            direct = self.ref(ref_key, size, clients)
            ngx_ref = "nginx_cold" if sc["kind"] == "miss" else "nginx_warm"
            if sc.get("phase") == "tls":
                ngx_ref = "nginx_warm_tls"
            ngx = self.ref(ngx_ref, size, clients)
            xd = f"{s['median'] / direct:.2f}" if direct and sc["key"] != ref_key else ("ref" if sc["key"] == ref_key else "–")
            if sc["key"] in ("nginx_cold", "nginx_warm", "nginx_warm_tls"):
                xn = "ref"
            elif sc["kind"] == "range":
                xn = "–"
            else:
                xn = f"{s['median'] / ngx:.2f}" if ngx else "–"
            up = "–"
            if "up" in s:
                vals = sorted(set(s["up"]))
                up = str(vals[0]) if len(vals) == 1 else "/".join(str(v) for v in s["up"])
                if sc["key"] == "glance_miss":
                    up += " store reads"
            cpu = " + ".join(f"{short[g]} {v:.0f}" for g, v in s["cpu"].items())
            rss = f"{s['rss_mib']:.1f}" if "rss_mib" in s else "–"
            lines.append(f"| {sc['label']} | {size_label(size)} | {clients} | **{s['median']:.0f}** | "
                         f"{s['lo']:.0f}–{s['hi']:.0f} | {s['n']} | {xd} | {xn} | {s['wall']:.2f} | "
                         f"{s['ttfb']:.1f} | {up} | {cpu} | {s['client_cpu']:.0f} | {rss} |")
        return "\n".join(lines)

    def targets(self):
        o, out = self.o, []

        def verdict(ok):
            return "**met**" if ok else "**MISSED**"

        def med(key, size, n):
            k = (key, size, n)
            return self.summary(k) if k in self.rows else None

        for size in o.sizes:
            for n in (1, o.parallel):
                p, ng, g = med("proxy_hit", size, n), med("nginx_warm", size, n), med("glance_hit", size, n)
                if p and ng and g:
                    ok = p["median"] >= ng["median"] and p["median"] >= 2 * g["median"]
                    cl = med("ceiling", size, n)
                    ceiling = (f"; this machine's ceiling, nginx serving the file itself: {cl['median']:.0f}"
                               if cl else "")
                    out.append(f"- hit, {size_label(size)}, {n} client(s): proxy {p['median']:.0f} MiB/s vs nginx warm "
                               f"{ng['median']:.0f} (≥ 1×) and Glance hit {g['median']:.0f} (≥ 2× = {2 * g['median']:.0f}"
                               f"{ceiling}): {verdict(ok)}")
                p, ng, g = med("proxy_miss", size, n), med("nginx_cold", size, n), med("glance_miss", size, n)
                if p and ng and g:
                    ok = p["median"] >= ng["median"] and p["median"] >= g["median"]
                    out.append(f"- miss, {size_label(size)}, {n} client(s): proxy {p['median']:.0f} MiB/s vs nginx cold "
                               f"{ng['median']:.0f} and Glance miss {g['median']:.0f} (≥ both): {verdict(ok)}")
            one, many = med("proxy_miss", size, 1), med("proxy_miss", size, o.parallel)
            if one and many:
                ups = sorted(set(many.get("up", [])))
                ratio = many["wall"] / one["wall"] if one["wall"] else float("inf")
                ok = ups == [1] and ratio <= 1.3
                out.append(f"- {o.parallel} concurrent cold, {size_label(size)}: upstream downloads {ups}, last client "
                           f"done in {many['wall']:.2f} s = {ratio:.2f}× one cold download ({one['wall']:.2f} s; "
                           f"target: exactly 1 and ≤ 1.3×): {verdict(ok)}")
        for n in [n for n in o.concurrency if n not in (1, o.parallel)]:
            for key, what in (("proxy_miss", "misses"), ("proxy_hit", "hits")):
                s = med(key, o.big_size, n)
                if s and "rss_mib" in s:
                    ok = s["rss_mib"] < 64
                    note = "" if o.big_size >= (1 << 30) else f" (image {size_label(o.big_size)}, not the 1 GiB of the target)"
                    out.append(f"- memory, {n} concurrent {size_label(o.big_size)} {what}: proxy peak RSS "
                               f"{s['rss_mib']:.1f} MiB (target < 64 MiB; a freshly started proxy, "
                               f"{s['rss_before_mib']:.1f} MiB before the burst){note}: {verdict(ok)}")
            s = med("proxy_miss", o.big_size, n)
            if s:
                out.append(f"- {n} concurrent cold, {size_label(o.big_size)}: upstream downloads "
                           f"{sorted(set(s.get('up', [])))} (target: exactly 1): {verdict(sorted(set(s.get('up', []))) == [1])}")
        for size in o.sizes:
            vals = {k: med(k, size, 1) for k in ("direct", "nginx_warm", "glance_hit", "proxy_hit", "proxy_hit_probe")}
            if all(vals.values()):
                out.append(f"- time to first byte, {size_label(size)}, median: proxy hit {vals['proxy_hit']['ttfb']:.1f} ms "
                           f"(authorization remembered), {vals['proxy_hit_probe']['ttfb']:.1f} ms (authorization probe "
                           f"on every request); nginx warm {vals['nginx_warm']['ttfb']:.1f} ms, Glance hit "
                           f"{vals['glance_hit']['ttfb']:.1f} ms, direct upstream {vals['direct']['ttfb']:.1f} ms")
        out.append("- `GET /v2/cache` with 10,000 entries: measured by the criterion bench "
                   "(`cargo bench --bench index`), not by this script")
        out.append("")
        out.append("**Targets (issue 11):**")
        out.append("")
        for size in o.sizes:
            for n in (1, o.parallel):
                p, ng, g = med("proxy_miss", size, n), med("nginx_cold", size, n), med("glance_miss", size, n)
                if p and ng and g:
                    ok = p["median"] >= ng["median"] and p["median"] >= g["median"]
                    out.append(f"- miss verified with MD5 and SHA-512, {size_label(size)}, {n} client(s): proxy "
                               f"{p['median']:.0f} MiB/s = {p['median'] / ng['median']:.2f}× nginx cold, "
                               f"{p['median'] / g['median']:.2f}× Glance's own miss (≥ both): {verdict(ok)}")
            d, p, q = med("direct_range", size, 1), med("proxy_range", size, 1), med("proxy_range_probe", size, 1)
            if d and p:
                ratio = d["time_ms"] / p["time_ms"] if p["time_ms"] else float("inf")
                probe = (f"; with the authorization asked on every request {q['time_ms']:.1f} ms "
                         f"({d['time_ms'] / q['time_ms']:.1f}× faster)") if q and q["time_ms"] else ""
                out.append(f"- 1 MiB range of a {size_label(size)} image, time to last byte (median): proxy range hit "
                           f"{p['time_ms']:.1f} ms vs the upstream's {d['time_ms']:.1f} ms = {ratio:.1f}× faster "
                           f"(target ≥ 5×, authorization remembered){probe}: {verdict(ratio >= 5)}")
        size = max(o.sizes)
        for n in (1, o.parallel):
            t, ng, plain = med("proxy_hit_tls", size, n), med("nginx_warm_tls", size, n), med("proxy_hit", size, n)
            if t and ng and plain:
                out.append(f"- hit over TLS, {size_label(size)}, {n} client(s): proxy {t['median']:.0f} MiB/s vs nginx "
                           f"proxy_cache over TLS {ng['median']:.0f} MiB/s = {t['median'] / ng['median']:.2f}× "
                           f"(target ≥ 1×); TLS costs the proxy {100 * (1 - t['median'] / plain['median']):.0f}% "
                           f"of its plain-HTTP hit ({plain['median']:.0f} MiB/s): {verdict(t['median'] >= ng['median'])}")
        on, off = med("proxy_hit_scrub", size, o.parallel), med("proxy_hit_noscrub", size, o.parallel)
        if on and off:
            cost = 1 - on["median"] / off["median"]
            idle = (f"; the scrubber alone, no client: {statistics.median(self.scrub_idle_cpu):.1f}% of one core"
                    if self.scrub_idle_cpu else "")
            out.append(f"- scrubbing at its default rate (8 MiB/s), {o.parallel} concurrent {size_label(size)} hits "
                       f"({on['n']} + {off['n']} samples): {on['median']:.0f} MiB/s "
                       f"vs {off['median']:.0f} MiB/s with the scrubber off = {100 * cost:+.1f}% cost "
                       f"(target < 5%){idle}: {verdict(cost < 0.05)}")
        return "\n".join(out)


def range_of(size):
    """The 1 MiB range the range rows ask for: from the middle of the image."""
    a = size // 2
    return a, min(size, a + MiB) - 1


def md5_of_file(path):
    r = subprocess.run(["md5sum", path], capture_output=True, text=True, check=True)
    return r.stdout.split()[0]


def md5_of_url(url, headers=()):
    hdrs = " ".join(f"-H '{h}'" for h in headers)
    r = subprocess.run(["bash", "-c", f'curl -sf --max-time 900 {hdrs} "$1" | md5sum', "md5", url],
                       capture_output=True, text=True)
    return r.stdout.split()[0] if r.stdout else "(no answer)"


def machine(env):
    def sh(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=30, shell=True).stdout.strip()
        except subprocess.SubprocessError:
            return "?"
    model = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
    mem = sh("awk '/MemTotal/{printf \"%.0f\", $2/1048576}' /proc/meminfo")
    osn = sh(". /etc/os-release 2>/dev/null && echo \"$PRETTY_NAME\"")
    virt = sh("systemd-detect-virt 2>/dev/null || true")
    return {"cores": os.cpu_count(), "cpu": model, "ram_gib": mem, "os": osn,
            "kernel": platform.release(), "virt": virt or "?", "load_at_start": env.get("loadavg_start", "?"),
            "versions": env.get("versions", {})}


def write_report(path, text):
    old = ""
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in old and END in old:
        new = old[:old.index(BEGIN)] + block + old[old.index(END) + len(END):]
    else:
        new = old.rstrip("\n") + ("\n\n" if old else "") + block + "\n"
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(new)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("env", help="JSON file written by run.sh")
    ap.add_argument("--sizes", default="64M,1G")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--concurrency", default="1,8,64")
    ap.add_argument("--big-size", default="")
    ap.add_argument("--big-runs", type=int, default=1)
    ap.add_argument("--scrub-samples", type=int, default=4,
                    help="samples per setting and round in the scrub-cost phase")
    ap.add_argument("--report", default="", help="file to write the report into (between its markers)")
    ap.add_argument("--json", default="", help="file for the raw samples")
    ap.add_argument("--no-sync", dest="sync", action="store_false")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--command", default="benches/load/run.sh")
    o = ap.parse_args()
    try:
        o.sizes = sorted(parse_size(s) for s in o.sizes.split(",") if s.strip())
        o.concurrency = sorted({int(n) for n in o.concurrency.split(",") if n.strip()})
        o.big_size = parse_size(o.big_size) if o.big_size else max(o.sizes)
    except ValueError as e:
        print(f"loadbench: {e}", file=sys.stderr)
        return 2
    if not o.sizes or o.runs < 1 or o.parallel < 2 or o.big_runs < 1 or min(o.concurrency) < 1:
        print("loadbench: need at least one size, --runs >= 1, --parallel >= 2, --big-runs >= 1", file=sys.stderr)
        return 2
    largest = max(o.sizes + [o.big_size])
    # generous but bounded: 20 MiB/s for every byte of the largest burst, plus 2 minutes
    o.curl_timeout = int(120 + largest * max(o.concurrency + [o.parallel]) / (20 * MiB))
    with open(o.env) as f:
        env = json.load(f)

    t_start = time.time()
    bench = Bench(env, o)
    try:
        bench.run()
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    elapsed = time.time() - t_start

    reduced = []
    if o.sizes != [64 * MiB, 1 << 30]:
        reduced.append(f"images of {' and '.join(size_label(s) for s in o.sizes)} only "
                       f"(the issue asks for 64 MiB and 1 GiB)")
    if o.runs < 5:
        reduced.append(f"{o.runs} run(s) per row instead of at least 5")
    if o.big_size < (1 << 30) and any(n not in (1, o.parallel) for n in o.concurrency):
        reduced.append(f"the {', '.join(str(n) for n in o.concurrency if n not in (1, o.parallel))}-client "
                       f"rows use {size_label(o.big_size)} images instead of 1 GiB")
    other = sum(t for t, _ in bench.other_cpu) / max(1e-9, sum(w for _, w in bench.other_cpu)) * 100
    m = machine(env)
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    v = m["versions"]
    head = [f"### Run of {when}" + (" (SMOKE: tiny image, numbers meaningless)" if o.smoke else ""),
            "",
            f"- machine: {m['cores']} cores ({m['cpu']}), {m['ram_gib']} GiB RAM, {m['os']}, kernel {m['kernel']}, "
            f"virtualization: {m['virt']}; load average at start: {m['load_at_start']}",
            f"- software: {v.get('proxy', '?')}; {v.get('glance', '?')} under uWSGI "
            f"({env['glance_upstream']['workers']} processes each); {v.get('nginx', '?')} (2 workers); {v.get('curl', '?')}",
            f"- command: `{o.command}` — {o.runs} run(s) per row (median shown), "
            f"{o.big_runs} run(s) for the {', '.join(str(n) for n in o.concurrency if n not in (1, o.parallel)) or '–'}"
            f"-client rows; measuring took {elapsed / 60:.1f} min",
            f"- CPU used by processes outside the benchmark while it measured: {other:.0f}% of one core on average"
            + (" — **noisy run**: other work shared the cores, compare rows of this run only" if other > 20 else ""),
            ]
    if reduced:
        head.append(f"- **reduced run**: {'; '.join(reduced)}")
    if bench.clear_refs_ok is False:
        head.append("- peak RSS from 20 ms VmRSS samples (VmHWM could not be reset)")
    if bench.errors:
        head.append(f"- **{len(bench.errors)} error(s)**: " + "; ".join(bench.errors[:10]))
    text = "\n".join(head) + "\n\n" + bench.table() + "\n\n**Targets (issue 5):**\n\n" + bench.targets() + "\n"
    print(text)
    if o.report:
        write_report(o.report, text)
        log(f"report written to {o.report}")
    if o.json:
        os.makedirs(os.path.dirname(os.path.abspath(o.json)), exist_ok=True)
        with open(o.json, "w") as f:
            json.dump({"when": when, "machine": m, "options": {k: v for k, v in vars(o).items()},
                       "errors": bench.errors, "samples": bench.samples}, f, indent=1, default=str)
        log(f"raw samples in {o.json}")
    if bench.errors:
        log(f"FAILED: {len(bench.errors)} error(s)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
