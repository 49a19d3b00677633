#!/usr/bin/env python3
"""Storm load script: what 1000 concurrent clients of one image cost the upstream and the proxy.

    python3 benches/load/storm.py [options]

One command, one machine, everything on 127.0.0.1. It builds the proxy (cargo build --release;
or --binary PATH), starts a real Glance (tests/harness/glance.sh, header authentication, so that
callers are told apart by their identity headers, --glance-workers uWSGI processes) and the
proxy in front of it, uploads two images of --size bytes, and runs three bursts of --clients
concurrent downloads through the proxy:

  hits, 1 caller       the image is cached; every client presents the same (fresh) identity
  hits, N callers      the image is cached; --callers fresh identities, clients spread evenly
  cold                 the second image, not cached; every client presents the same identity

For each burst it prints: the upstream requests the burst caused (from Glance's uWSGI request
log: one-byte authorization probes, image-record lookups, full downloads), the clients served
(status 200 with every byte; a sample of bodies is checked against the image's MD5), 503s,
the time to first byte (p50, p99, max), and the proxy's peak RSS during the burst (VmHWM,
reset before it) and its RSS 10 s after the burst. With --label, the results are kept in
target/storm/LABEL.json and BENCHMARKS.md's storm section (between its markers) is rewritten
with one row group per label found there (e.g. "before", the build of an older commit passed
with --binary, and "after").

Standard library only. Loops and waits are bounded (--timeout per client). Exit status 0 when
every client of every burst was served correctly or answered 503 (a missed goal is reported,
not an error), 1 when a client got a wrong or incomplete body or another status, 2 on a usage
error.
"""
import argparse
import asyncio
import datetime
import hashlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from loadbench import parse_size, reset_peak_rss, status_kib  # noqa: E402  (the load script's helpers)
BEGIN = "<!-- storm:begin -->"
END = "<!-- storm:end -->"
MiB = 1 << 20


def log(msg):
    print(f"storm: {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def identity(user):
    return {"X-Identity-Status": "Confirmed", "X-Roles": "member,reader",
            "X-User-Id": user, "X-Project-Id": f"project-{user}"}


ADMIN = {"X-Identity-Status": "Confirmed", "X-Roles": "admin,member,reader",
         "X-User-Id": "storm-admin", "X-Project-Id": "storm-admin-project"}


def curl(args, headers=(), timeout=120):
    cmd = ["curl", "-sS", "--max-time", str(timeout), "-w", "\n%{http_code}"]
    for k, v in dict(headers).items():
        cmd += ["-H", f"{k}: {v}"]
    r = subprocess.run(cmd + args, capture_output=True, text=True, check=False)
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body


# ----------------------------------------------------------------------------- the clients
async def one_download(port, path, headers, size, want_md5, check, timeout):
    """One GET on a fresh connection: (status, bytes, ttfb seconds, md5 ok or None, error)."""
    started = time.monotonic()
    writer = None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, limit=1 << 20), timeout)
        head = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        deadline = started + timeout
        raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), deadline - time.monotonic())
        ttfb = time.monotonic() - started
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        digest = hashlib.md5() if check and status == 200 else None
        got = 0
        while length is None or got < length:
            chunk = await asyncio.wait_for(reader.read(1 << 18), deadline - time.monotonic())
            if not chunk:
                break
            got += len(chunk)
            if digest:
                digest.update(chunk)
        ok = None
        if digest:
            ok = got == size and digest.hexdigest() == want_md5
        return status, got, ttfb, ok, None
    except Exception as e:  # noqa: BLE001 - every failure is a result here
        return None, 0, time.monotonic() - started, None, f"{type(e).__name__}: {e}"
    finally:
        if writer is not None:
            writer.close()


async def burst(port, path, callers, clients, size, want_md5, timeout):
    """`clients` concurrent downloads; client i presents callers[i % len(callers)]. Every 25th
    body is hashed."""
    tasks = [one_download(port, path, callers[i % len(callers)], size, want_md5, i % 25 == 0,
                          timeout) for i in range(clients)]
    return await asyncio.gather(*tasks)


# ----------------------------------------------------------------------------- the run
class Storm:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="glance-cache-storm.")
        self.glance_base = os.path.join(self.tmp, "glance")
        self.proxy = None
        self.glance_url = None

    def start_glance(self):
        log(f"starting a real Glance ({self.args.glance_workers} uWSGI workers, header auth)")
        r = subprocess.run(
            ["bash", os.path.join(ROOT, "tests/harness/glance.sh"), "start", "--port", "0",
             "--base", self.glance_base, "--auth", "headers",
             "--workers", str(self.args.glance_workers), "--watch-pid", str(os.getpid())],
            capture_output=True, text=True, check=False, timeout=300)
        if r.returncode != 0:
            sys.exit(f"storm: Glance did not start:\n{r.stderr}")
        self.glance_url = r.stdout.strip().splitlines()[-1]

    def stop_glance(self):
        subprocess.run(["bash", os.path.join(ROOT, "tests/harness/glance.sh"), "stop", "--base",
                        self.glance_base], capture_output=True, check=False, timeout=120)

    def request_log(self):
        return os.path.join(self.glance_base, "log", "uwsgi.log")

    def create_image(self, name, path):
        body = json.dumps({"name": name, "disk_format": "raw", "container_format": "bare",
                           "visibility": "public"})
        code, text = curl(["-X", "POST", "-H", "Content-Type: application/json",
                           "--data-binary", body, f"{self.glance_url}/v2/images"], ADMIN)
        if code != 201:
            sys.exit(f"storm: creating an image answered {code}: {text}")
        iid = json.loads(text)["id"]
        code, text = curl(["-X", "PUT", "-H", "Content-Type: application/octet-stream",
                           "-T", path, f"{self.glance_url}/v2/images/{iid}/file"], ADMIN)
        if code != 204:
            sys.exit(f"storm: uploading answered {code}: {text}")
        return iid

    def start_proxy(self, binary):
        self.port = free_port()
        self.cache = os.path.join(self.tmp, "cache")
        conf = os.path.join(self.tmp, "proxy.conf")
        with open(conf, "w") as f:
            f.write(f"[DEFAULT]\nbind_host = 127.0.0.1\nbind_port = {self.port}\n"
                    f"image_cache_dir = {self.cache}\nimage_cache_max_size = {8 << 30}\n"
                    f"[proxy]\nupstream_url = {self.glance_url}\n")
        self.proxy_log = open(os.path.join(self.tmp, "proxy.log"), "wb")
        env = dict(os.environ, RUST_LOG=os.environ.get("STORM_RUST_LOG", "warn"))
        self.proxy = subprocess.Popen([binary, "serve", "--config-file", conf],
                                      stdout=self.proxy_log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proxy.poll() is not None:
                sys.exit(f"storm: the proxy exited with {self.proxy.returncode} "
                         f"(log: {self.proxy_log.name})")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        sys.exit("storm: the proxy does not answer")

    def stop_proxy(self):
        if self.proxy and self.proxy.poll() is None:
            self.proxy.send_signal(signal.SIGTERM)
            try:
                self.proxy.wait(20)
            except subprocess.TimeoutExpired:
                self.proxy.kill()
                self.proxy.wait(5)

    def upstream_requests(self, iid, offset):
        """What Glance logged for image iid after offset, once the log is quiet for 1 s:
        probes (206 of /file), record lookups, full downloads (200 of /file)."""
        last, since, deadline = None, time.monotonic(), time.monotonic() + 30
        counts = {}
        while time.monotonic() < deadline:
            with open(self.request_log(), "rb") as f:
                f.seek(offset)
                text = f.read().decode("utf-8", "replace")
            counts = {"probes": 0, "records": 0, "downloads": 0, "other": 0}
            for line in text.splitlines():
                if f"/v2/images/{iid}" not in line or " => generated " not in line:
                    continue
                if f"GET /v2/images/{iid}/file" in line:
                    if "(HTTP/1.1 206)" in line or "(HTTP/1.0 206)" in line:
                        counts["probes"] += 1
                    elif "(HTTP/1.1 200)" in line or "(HTTP/1.0 200)" in line:
                        counts["downloads"] += 1
                    else:
                        counts["other"] += 1
                elif f"GET /v2/images/{iid} " in line:
                    counts["records"] += 1
                else:
                    counts["other"] += 1
            if counts != last:
                last, since = counts, time.monotonic()
            elif time.monotonic() - since >= 1:
                break
            time.sleep(0.2)
        return counts

    def wait_cached(self, iid):
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if os.path.exists(os.path.join(self.cache, iid)):
                time.sleep(0.5)
                return
            time.sleep(0.1)
        sys.exit(f"storm: {iid} was not cached in 120 s")

    def run_burst(self, name, iid, callers, want_md5):
        a = self.args
        pid = self.proxy.pid
        offset = os.path.getsize(self.request_log())
        reset_peak_rss(pid)
        log(f"{name}: {a.clients} concurrent downloads, {len(callers)} caller(s)")
        t0 = time.monotonic()
        results = asyncio.run(burst(self.port, f"/v2/images/{iid}/file", callers, a.clients,
                                    self.size, want_md5, a.timeout))
        wall = time.monotonic() - t0
        peak = status_kib(pid, "VmHWM")
        time.sleep(10)
        after = status_kib(pid, "VmRSS")
        upstream = self.upstream_requests(iid, offset)
        served = sum(1 for s, n, _, ok, _ in results if s == 200 and n == self.size and ok is not False)
        busy = sum(1 for s, *_ in results if s == 503)
        wrong = sum(1 for s, n, _, ok, _ in results if s == 200 and (n != self.size or ok is False))
        failed = [e or f"status {s}" for s, n, _, ok, e in results if s not in (200, 503)]
        ttfb = sorted(t for s, _, t, _, _ in results if s is not None)
        pct = (lambda q: ttfb[min(len(ttfb) - 1, int(q * len(ttfb)))] if ttfb else None)
        row = {
            "burst": name, "clients": a.clients, "callers": len(callers), "size": self.size,
            "served": served, "busy": busy, "wrong": wrong, "failed": len(failed),
            "failures": sorted(set(failed))[:5], "upstream": upstream,
            "ttfb_p50": pct(0.5), "ttfb_p99": pct(0.99), "ttfb_max": ttfb[-1] if ttfb else None,
            "peak_rss_mib": round(peak / 1024, 1) if peak else None,
            "after_rss_mib": round(after / 1024, 1) if after else None,
            "wall_s": round(wall, 1),
        }
        log(f"{name}: served {served}, 503 {busy}, wrong {wrong}, failed {len(failed)}; "
            f"upstream {upstream}; ttfb p50 {row['ttfb_p50']:.3f} s p99 {row['ttfb_p99']:.3f} s "
            f"max {row['ttfb_max']:.3f} s; peak RSS {row['peak_rss_mib']} MiB, "
            f"after {row['after_rss_mib']} MiB; {wall:.1f} s")
        return row

    def run(self):
        a = self.args
        self.size = parse_size(a.size)
        self.start_glance()
        data = os.path.join(self.tmp, "image.raw")
        with open(data, "wb") as f:
            for _ in range(0, self.size, MiB):
                f.write(os.urandom(min(MiB, self.size - f.tell())))
        with open(data, "rb") as f:
            want = hashlib.md5(f.read()).hexdigest()
        hot = self.create_image("storm-hot", data)
        cold = self.create_image("storm-cold", data)
        self.start_proxy(a.binary)
        fresh_rss = status_kib(self.proxy.pid, "VmRSS")
        # Warm the hot image as another user; the storms use identities never seen before, so
        # nothing is remembered for them.
        code, _ = curl(["-o", "/dev/null", f"http://127.0.0.1:{self.port}/v2/images/{hot}/file"],
                       identity("storm-warm"))
        if code != 200:
            sys.exit(f"storm: warming the cache answered {code}")
        self.wait_cached(hot)
        rows = [
            self.run_burst("hits, 1 caller", hot, [identity("storm-one")], want),
            self.run_burst(f"hits, {a.callers} callers", hot,
                           [identity(f"storm-{i}") for i in range(a.callers)], want),
            self.run_burst("cold", cold, [identity("storm-cold")], want),
        ]
        return {"fresh_rss_mib": round(fresh_rss / 1024, 1) if fresh_rss else None, "rows": rows}

    def cleanup(self):
        self.stop_proxy()
        self.stop_glance()
        if self.args.keep:
            log(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


# ----------------------------------------------------------------------------- the report
def fmt(v, spec="{:.2f}"):
    return "–" if v is None else spec.format(v)


def table(results):
    out = ["| build | burst | upstream probes / records / full downloads | served | 503 | "
           "TTFB p50 / p99 / max (s) | peak RSS (MiB) | RSS 10 s after (MiB) |",
           "|---|---|---|---|---|---|---|---|"]
    for label, res in results:
        for r in res["rows"]:
            u = r["upstream"]
            out.append(
                f"| {label} | {r['burst']} | {u['probes']} / {u['records']} / {u['downloads']} | "
                f"{r['served']} of {r['clients']} | {r['busy']} | "
                f"{fmt(r['ttfb_p50'])} / {fmt(r['ttfb_p99'])} / {fmt(r['ttfb_max'])} | "
                f"{fmt(r['peak_rss_mib'], '{:.0f}')} | {fmt(r['after_rss_mib'], '{:.0f}')} |")
    return "\n".join(out)


def write_report(path, results, meta):
    labels = ", ".join(f"{label}: {res['binary_desc']}" for label, res in results)
    text = (f"{BEGIN}\n"
            f"Written by `python3 benches/load/storm.py --label LABEL` ({meta}); builds: {labels}.\n"
            f"{results[0][1]['rows'][0]['clients']} concurrent downloads of one "
            f"{results[0][1]['rows'][0]['size'] >> 20} MiB image per burst, each on its own "
            f"connection, against a real Glance with {results[0][1]['glance_workers']} uWSGI "
            f"workers (header auth: callers differ by identity headers never seen before the "
            f"burst). Upstream requests are Glance's own request log; RSS is the proxy's VmHWM "
            f"(reset before each burst) and VmRSS 10 s after it. Goals: one caller costs a handful "
            f"of upstream requests, 100 callers at most 100, no full download of a cached image, "
            f"every client served, peak RSS under 256 MiB and under 64 MiB after the burst.\n\n"
            f"{table(results)}\n{END}")
    try:
        with open(path) as f:
            old = f.read()
    except FileNotFoundError:
        old = "# Benchmarks\n"
    if BEGIN in old and END in old:
        new = old[: old.index(BEGIN)] + text + old[old.index(END) + len(END):]
    else:
        new = old.rstrip("\n") + "\n\n## Storms: 1000 clients of one image\n\n" + text + "\n"
    with open(path, "w") as f:
        f.write(new)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--callers", type=int, default=100)
    p.add_argument("--size", default="16M")
    p.add_argument("--glance-workers", type=int, default=4)
    p.add_argument("--timeout", type=float, default=300, help="seconds per client (default 300)")
    p.add_argument("--binary", help="use this glance-cache-proxy, do not build")
    p.add_argument("--label", help="keep the results as LABEL and rewrite the report")
    p.add_argument("--report", default=os.path.join(ROOT, "BENCHMARKS.md"))
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    a = p.parse_args()
    if a.clients < 1 or a.callers < 1 or a.callers > a.clients:
        p.error("need 1 <= --callers <= --clients")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * a.clients + 256
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            sys.exit(f"storm: {a.clients} clients need {need} open files; the limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    if not a.binary:
        log("building glance-cache-proxy (cargo build --release)")
        subprocess.run(["cargo", "build", "-q", "--release", "-p", "glance-cache-proxy"],
                       cwd=ROOT, check=True)
        meta = json.loads(subprocess.run(
            ["cargo", "metadata", "-q", "--format-version", "1", "--no-deps"], cwd=ROOT,
            capture_output=True, text=True, check=True).stdout)
        a.binary = os.path.join(meta["target_directory"], "release", "glance-cache-proxy")
    storm = Storm(a)
    try:
        res = storm.run()
    finally:
        storm.cleanup()
    res["glance_workers"] = a.glance_workers
    rev = subprocess.run(["git", "-C", os.path.dirname(os.path.abspath(a.binary)), "rev-parse",
                          "--short", "HEAD"], capture_output=True, text=True, check=False)
    res["binary_desc"] = os.environ.get("STORM_BUILD_DESC") or (
        f"commit {rev.stdout.strip()}" if rev.returncode == 0 else a.binary)
    print(table([(a.label or "this run", res)]))
    if a.label:
        keep_dir = os.path.join(ROOT, "target", "storm")
        os.makedirs(keep_dir, exist_ok=True)
        with open(os.path.join(keep_dir, f"{a.label}.json"), "w") as f:
            json.dump(res, f, indent=1)
        results = []
        for name in sorted(os.listdir(keep_dir)):
            if name.endswith(".json"):
                with open(os.path.join(keep_dir, name)) as f:
                    results.append((name[:-5], json.load(f)))
        order = {"before": 0, "after": 1}
        results.sort(key=lambda x: (order.get(x[0], 2), x[0]))
        meta = (f"{datetime.date.today()}, {platform.node() or 'this machine'}, "
                f"{os.cpu_count()} cores")
        write_report(a.report, results, meta)
        log(f"wrote {a.report}")
    bad = sum(r["wrong"] + r["failed"] for r in res["rows"])
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
