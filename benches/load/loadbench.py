#!/usr/bin/env python3
"""Measurement engine of the end-to-end load benchmark (run it through benches/load/run.sh).

run.sh starts the servers (two real Glances, nginx, the proxy; for the cluster and remote rows
also an S3 server, three proxies sharing it as their remote tier, three nginx and HAProxy in
front of each trio) and describes them in a JSON file; this program uploads the images, runs
every scenario with curl on 127.0.0.1, and prints one table (Markdown) of MiB/s with each row's
ratio to the reference rows, the targets of issues 5 and 11 and of the cluster, and writes the
report into BENCHMARKS.md between its markers (a run with --only: into its own block there).

Standard library only. Exit status: 0 when every download was complete and correct, the proxy
made exactly one upstream download per cold burst, the proxy cluster exactly one per cold image
(and uploaded it to the bucket once), and every remote hit none; 1 otherwise (a missed
*performance* target is reported, never an error), 2 on a usage error.
"""
import argparse
import datetime
import hashlib
import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

MiB = 1 << 20
CLK = os.sysconf("SC_CLK_TCK")
SCRUBBED = "glance_cache_scrubbed_bytes_total"
BEGIN = "<!-- loadbench:begin -->"
END = "<!-- loadbench:end -->"
# A run with --only writes its block inside the section above (a full run replaces it all).
ONLY_BEGIN = "<!-- loadbench:only:begin -->"
ONLY_END = "<!-- loadbench:only:end -->"
GROUPS = ("main", "misses", "scrub", "tls", "bursts", "cluster", "remote")
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


def median_interval(values, level=0.90, draws=2000):
    """A bootstrap interval of the median of `values` (resampled with replacement; a fixed
    seed, so that a report is reproducible from its samples)."""
    rng = random.Random(1)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(draws))
    cut = int(draws * (1 - level) / 2)
    return medians[cut], medians[draws - 1 - cut]


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
    """Polls VmRSS every 20 ms: a cross-check of VmHWM (and the only figure if clear_refs fails).
    With several processes (the cluster's proxies), the peak is the largest of any one."""

    def __init__(self, pids):
        super().__init__(daemon=True)
        self.pids, self.peak, self.stop = list(pids), 0, threading.Event()

    def run(self):
        while not self.stop.is_set():
            for pid in self.pids:
                v = status_kib(pid, "VmRSS")
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


def metric_total(admin_port, name):
    """The value of the unlabelled counter `name` on a proxy's admin endpoint (None when the
    endpoint does not answer or has no such sample)."""
    text = curl([f"http://127.0.0.1:{admin_port}/metrics"], timeout=10)
    m = re.search(rf"^{re.escape(name)} (\d+)", text or "", re.M)
    return int(m.group(1)) if m else None


def free_port():
    """A TCP port of 127.0.0.1 that nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def remote_events(admin_port):
    """glance_cache_remote_events_total of a proxy's admin endpoint: {event: count}
    (empty when the endpoint does not answer)."""
    text = curl([f"http://127.0.0.1:{admin_port}/metrics"], timeout=10)
    out = {}
    for m in re.finditer(r'^glance_cache_remote_events_total\{event="(\w+)"\} (\d+)', text, re.M):
        out[m.group(1)] = int(m.group(2))
    return out


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
        self.round = None        # (phase, size, round) of the samples being taken: pairs rows by round
        self.other_cpu = []      # (other ticks, wall) per sample
        self.clear_refs_ok = None
        self.fill_pending = {}   # (server, size) -> a miss ran and its commit may be pending
        self.scrub_idle_cpu = []  # the scrubbing proxy's CPU % with no client
        self.scrub_idle_rate = []  # MiB/s the scrubber hashed then
        self.scrub_busy_rate = []  # MiB/s the scrubber hashed during each sample of hits
        # the cluster rows: 3 proxies sharing an S3 bucket, 3 nginx, HAProxy in front of each
        self.cl = env.get("cluster")
        if self.cl:
            self.nodes = [f"http://127.0.0.1:{n['port']}" for n in self.cl["nodes"]]
            self.ha_proxies = f"http://127.0.0.1:{self.cl['haproxy']['proxies_port']}"
            self.ha_nginx = f"http://127.0.0.1:{self.cl['haproxy']['nginx_port']}"
        self.node_pending = set()    # (node index, size): a fill ran there, its commit may be pending
        self.upload_pending = set()  # sizes whose image a node is uploading to the bucket
        self.cluster_key = {}        # size -> the nginx cluster's cache key of this round
        self.cluster_sources = []    # per cold cluster sample: remote event deltas summed over nodes
        self.remote_before = None    # node 1's remote events before a remote-hit sample
        self.digest_speeds = {}      # "md5"/"sha512" -> MiB/s of `openssl dgst` over the image, per round

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

    # -- the cluster: 3 proxies sharing an S3 bucket, 3 nginx, HAProxy ---------------------
    def bucket_file(self, kind, size):
        """The S3 server's file of the image's object (kind "images") or fill lease ("leases")."""
        s3 = self.cl["s3"]
        return os.path.join(s3["root"], s3["bucket"], s3["prefix"], kind, self.ids[("up", size)])

    def node_cached(self, i, size):
        doc = get_json(f"{self.nodes[i]}/v2/cache", self.admin)
        iid = self.ids[("up", size)]
        return bool(doc) and any(c.get("image_id") == iid for c in doc.get("cached_images", []))

    def node_events(self, nodes=None):
        """The remote events of the nodes (all by default), summed: {event: count}."""
        total = {}
        for i in (range(len(self.nodes)) if nodes is None else nodes):
            for k, v in remote_events(self.cl["nodes"][i]["admin_port"]).items():
                total[k] = total.get(k, 0) + v
        return total

    @staticmethod
    def events_delta(before, after):
        return {k: after.get(k, 0) - before.get(k, 0) for k in sorted(set(before) | set(after))
                if after.get(k, 0) != before.get(k, 0)}

    def settle_nodes(self, size):
        """Every node where a fill of the image ran has committed it (see settle)."""
        for i in range(len(self.nodes)):
            if (i, size) in self.node_pending:
                self.node_pending.discard((i, size))
                self.settle(lambda i=i: self.node_cached(i, size), f"cluster node {i + 1}")

    def wait_uploaded(self, size):
        """After a fill from the upstream: its upload to the bucket is over (the fill lease,
        released after the upload, is gone) and the object is there. Bounded."""
        if size not in self.upload_pending:
            return
        self.upload_pending.discard(size)
        obj, lease = self.bucket_file("images", size), self.bucket_file("leases", size)
        deadline = time.monotonic() + 120 + size / (10 * MiB)
        while time.monotonic() < deadline:
            if not os.path.exists(lease) and os.path.exists(obj):
                return
            time.sleep(0.05)
        self.error(f"cluster: the upload of the {size_label(size)} image to the bucket did not finish "
                   f"(lease there: {os.path.exists(lease)}, object there: {os.path.exists(obj)})")

    def evict_node(self, i, size):
        iid = self.ids[("up", size)]
        code = http_status("DELETE", f"{self.nodes[i]}/v2/cache/{iid}", self.admin)
        if code not in ("204", "404"):
            self.error(f"cluster node {i + 1}: DELETE /v2/cache/{iid} answered {code}")
        if self.node_cached(i, size):
            self.error(f"cluster node {i + 1} still lists {iid} after DELETE /v2/cache")

    def evict_cluster(self, size):
        """No node has the image and the bucket has no copy: the next download is cold for the
        whole cluster. The previous fills and the upload are waited for first."""
        self.settle_nodes(size)
        self.wait_uploaded(size)
        for i in range(len(self.nodes)):
            self.evict_node(i, size)
        # what s3s-fs's DeleteObject does: the object's bytes go (its JSON side files stay)
        try:
            os.unlink(self.bucket_file("images", size))
        except FileNotFoundError:
            pass
        if os.path.exists(self.bucket_file("leases", size)):
            self.error("cluster: a fill lease is left in the bucket after every fill ended")

    def cluster_cold_prep(self, size, rep, clients):
        self.evict_cluster(size)
        self.remote_before = self.node_events()

    def cluster_cold_after(self, size, s):
        """Every node filled the image: wait for the commits and the upload (outside the
        measured time, so that the next sample does not share the machine with it), and check
        that the image went to the bucket once."""
        self.node_pending |= {(i, size) for i in range(len(self.nodes))}
        self.upload_pending.add(size)
        self.settle_nodes(size)
        self.wait_uploaded(size)
        d = self.events_delta(self.remote_before, self.node_events())
        s["remote_events"] = d
        self.cluster_sources.append(d)
        if d.get("upload", 0) != 1 or d.get("upload_failure", 0):
            self.error(f"cluster cold {size_label(size)}: the image was not uploaded to the bucket "
                       f"exactly once (remote events {d})")

    def cluster_warm_prep(self, size, rep, clients):
        """Every node has the image; each remembers that this caller may download it (a
        1-byte range first), as for the single proxy's hit row."""
        self.settle_nodes(size)
        iid = self.ids[("up", size)]
        for i, base in enumerate(self.nodes):
            if not self.node_cached(i, size):
                self.error(f"cluster warm: node {i + 1} does not have the image")
            curl(["-o", "/dev/null", "-H", "Range: bytes=0-0", f"{base}/v2/images/{iid}/file"])

    def ensure_in_bucket(self, size):
        """The bucket has the image (uploaded by a node, as in the cluster rows)."""
        self.settle_nodes(size)
        self.wait_uploaded(size)
        iid = self.ids[("up", size)]
        if not os.path.exists(self.bucket_file("images", size)):
            # nothing in the bucket yet (no cluster row ran): node 1 fills from the upstream
            # and uploads
            self.evict_cluster(size)
            curl(["-o", "/dev/null", f"{self.nodes[0]}/v2/images/{iid}/file"], timeout=self.o.curl_timeout)
            self.node_pending.add((0, size))
            self.upload_pending.add(size)
            self.settle_nodes(size)
            self.wait_uploaded(size)
            if not os.path.exists(self.bucket_file("images", size)):
                self.error("the image did not reach the bucket")

    def remote_hit_prep(self, size, rep, clients):
        """Node 1 without its local copy, the bucket with the image: the next download from
        node 1 is filled from the bucket."""
        self.ensure_in_bucket(size)
        self.evict_node(0, size)
        self.remote_before = self.node_events([0])

    def remote_hit_after(self, size, s):
        self.node_pending.add((0, size))
        self.settle_nodes(size)
        d = self.events_delta(self.remote_before, self.node_events([0]))
        s["remote_events"] = d
        if d.get("hit", 0) != 1 or d.get("peer_stream", 0):
            self.error(f"remote hit {size_label(size)}: node 1 did not fill from the bucket "
                       f"(remote events {d}, want one hit)")

    def verify_cluster(self, size):
        """The cluster's paths, compared with the source by MD5 (untimed): 3 concurrent cold
        downloads through HAProxy (one per node: a fill from the upstream and fills that
        follow it), each node's local hit, a remote hit, and nginx's cluster cold and warm."""
        want = md5_of_file(self.file_for(size))
        iid = self.ids[("up", size)]
        n = len(self.nodes)

        def check(name, got):
            bad = [g for g in got if g != want]
            if bad:
                self.error(f"{name} ({size_label(size)}): md5 {bad[0]} != source {want}")

        self.evict_cluster(size)
        before, offset = self.node_events(), self.log_offset()
        check("cluster cold through HAProxy", md5_of_urls([f"{self.ha_proxies}/v2/images/{iid}/file"] * n))
        self.node_pending |= {(i, size) for i in range(n)}
        self.upload_pending.add(size)
        self.settle_nodes(size)
        self.wait_uploaded(size)
        ups = self.upstream_downloads(iid, offset)
        if ups != 1:
            self.error(f"cluster cold check ({size_label(size)}): the upstream logged {ups} downloads, want 1")
        log(f"cluster: {n} concurrent cold downloads through HAProxy: upstream downloads {ups}, "
            f"remote events {self.events_delta(before, self.node_events())}")
        for i, base in enumerate(self.nodes):
            check(f"cluster node {i + 1} local hit", [md5_of_url(f"{base}/v2/images/{iid}/file")])
        self.remote_hit_prep(size, 0, 1)
        check("remote hit (node 1)", [md5_of_url(f"{self.nodes[0]}/v2/images/{iid}/file")])
        self.remote_hit_after(size, {})
        key = f"verify-{self.stamp}"
        for what in ("cold", "warm"):
            check(f"nginx cluster {what} through HAProxy",
                  md5_of_urls([f"{self.ha_nginx}/v2/images/{iid}/file?cold={key}"] * n))
        log(f"{size_label(size)}: every cluster path returned the source bytes (md5 {want})")

    def cluster_phase(self, scs):
        size, n = self.o.cluster_size, self.o.cluster_clients
        by_key = {sc["key"]: sc for sc in scs}
        log(f"== cluster, {size_label(size)}: {self.o.runs} rounds of {n} concurrent clients through HAProxy, "
            "3 proxies sharing an S3 bucket and 3 nginx: cold, then warm")
        for rep in range(self.o.runs):
            for key in ("cluster_proxy_cold", "cluster_nginx_cold", "cluster_proxy_warm", "cluster_nginx_warm"):
                sc = by_key[key]
                if sc.get("prep"):
                    sc["prep"](size, rep, n)
                self.record(sc, size, n, self.sample(sc, size, n))

    def remote_phase(self, scs):
        """Remote hits of node 1 in rounds, with the rows they are compared with (1 client, the
        same image) when no earlier phase measured them."""
        size = self.o.cluster_size
        by_key = {sc["key"]: sc for sc in scs}
        refs = [k for k in ("direct", "glance_miss", "proxy_miss", "proxy_hit") if (k, size, 1) not in self.rows]
        keys = refs + ["s3_get", "remote_hit"]
        log(f"== remote hit, {size_label(size)}: {self.o.runs} rounds of {', '.join(keys)}")
        for rep in range(self.o.runs):
            for key in keys:
                sc = by_key[key]
                if sc.get("prep"):
                    sc["prep"](size, rep, 1)
                self.record(sc, size, 1, self.sample(sc, size, 1))
            self.digest_round(self.bucket_file("images", size), size)

    def digest_round(self, path, size):
        """MD5 and SHA-512 alone over the image's bytes, one core each, with the libcrypto the
        proxy links (`openssl dgst`, the file in the page cache): how fast a stream verified with
        either can go at best, whatever else runs."""
        for algo in ("md5", "sha512"):
            t = time.monotonic()
            subprocess.run(["openssl", "dgst", f"-{algo}", path], check=True,
                           stdout=subprocess.DEVNULL, timeout=600)
            self.digest_speeds.setdefault(algo, []).append(size / MiB / (time.monotonic() - t))

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

    def group_pids(self, g):
        """The processes of a server group: its master(s) and their direct children."""
        if g == "nodes":
            masters = [n["pid"] for n in self.cl["nodes"]]
        elif g == "node1":
            masters = [self.cl["nodes"][0]["pid"]]
        elif g == "cnginx":
            masters = [n["pid"] for n in self.cl["nginx"]]
        elif g in ("haproxy", "s3"):
            masters = [self.cl[g]["pid"]]
        else:
            masters = [self.env[g]["pid"]]
        return set().union(*(pids_of(m) for m in masters))

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
        groups = {g: self.group_pids(g) for g in sc["groups"]}
        # the proxies whose peak RSS the row reports
        rss_pids = sc["rss"]() if "rss" in sc else (
            [self.env["proxy"]["pid"]] if sc["server"] == "proxy" else [])
        sampler = None
        if rss_pids:
            rss_before = max(status_kib(p, "VmRSS") or 0 for p in rss_pids)
            ok = all([reset_peak_rss(p) for p in rss_pids])
            if self.clear_refs_ok is None:
                self.clear_refs_ok = ok
            sampler = RssSampler(rss_pids)
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
        s = {"scenario": sc["key"], "size": size, "clients": clients, "ok": ok, "wall": wall, "round": self.round,
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
        if rss_pids:
            hwm = max(status_kib(p, "VmHWM") or 0 for p in rss_pids) if self.clear_refs_ok else None
            s["proxy_peak_rss_kib"] = max(hwm or 0, sampler.peak)
            s["proxy_rss_before_kib"] = rss_before or 0
            if any(status_kib(p, "VmRSS") is None for p in rss_pids):
                self.error(f"{sc['label']}: a proxy process is gone")
        want_up = sc.get("expect_upstream", 1 if sc["server"] == "proxy" and sc["kind"] == "miss" else None)
        if want_up is not None and s.get("upstream_downloads") != want_up:
            self.error(f"{sc['label']} {size_label(size)} x{clients}: the upstream logged "
                       f"{s.get('upstream_downloads')} downloads of the image, want exactly {want_up}")
        if sc["kind"] == "miss" and sc["server"] in ("proxy", "glance"):
            self.fill_pending[(sc["server"], size)] = True
        if sc.get("after"):
            sc["after"](size, s)
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

        # curl signs its requests to the S3 server itself (AWS SigV4)
        s3_auth = ([] if not self.cl else
                   ["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
                    "--aws-sigv4", f"aws:amz:{self.cl['s3']['region']}:s3",
                    "--user", f"{self.cl['s3']['access_key_id']}:{self.cl['s3']['secret_access_key']}"])

        def cluster_nginx_prep(size, rep, clients):
            # a new cache key every round: cold in the 3 nginx; the warm row reads it again
            self.cluster_key[size] = f"cluster-{self.stamp}-{size}-{rep}"
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
            dict(key="s3_get",
                 label="S3 server alone: GET of the bucket's copy (curl, SigV4; the remote tier's speed)",
                 server="s3", kind="remote", groups=["s3"], phase="remote", nginx_ref="none",
                 curl_args=s3_auth, prep=lambda size, rep, clients: self.ensure_in_bucket(size),
                 url=lambda size, k: f"{self.cl['s3']['endpoint']}/{self.cl['s3']['bucket']}/"
                                     f"{self.cl['s3']['prefix']}/images/{up(size)}"),
            dict(key="remote_hit",
                 label="glance-cache-proxy remote hit (local copy deleted, image in the S3 bucket)",
                 server="node1", kind="remote", groups=["node1", G_UP, "s3"], phase="remote",
                 count="upstream", expect_upstream=0, nginx_ref="nginx_cold",
                 rss=lambda: [self.cl["nodes"][0]["pid"]],
                 prep=self.remote_hit_prep, after=self.remote_hit_after,
                 url=lambda size, k: f"{self.nodes[0]}/v2/images/{up(size)}/file"),
            dict(key="proxy_hit_probe",
                 label="glance-cache-proxy hit, authorization probe every request",
                 server="proxy", kind="hit", groups=[PRX, G_UP], single_only=True,
                 prep=lambda size, rep, clients: self.ensure_proxy_cached(size),
                 # a new caller identity each time: no remembered authorization
                 headers=lambda k: [f"X-Loadbench-Caller: {self.stamp}-{nonce()}"],
                 url=lambda size, k: f"{self.proxy}/v2/images/{up(size)}/file"),
            dict(key="proxy_hit_scrub",
                 label="glance-cache-proxy hit, scrubber reading at its default rate (8 MiB/s)",
                 server="twin", kind="hit", groups=["twin", G_UP], phase="scrub",
                 rss=lambda: [self.env["twin"]["pid"]],
                 # one download before: the twin remembers this caller may download it
                 prep=lambda size, rep, clients: curl(
                     ["-o", "/dev/null", f"{self.env['twin']['url']}/v2/images/{up(size)}/file"],
                     timeout=self.o.curl_timeout),
                 url=lambda size, k: f"{self.env['twin']['url']}/v2/images/{up(size)}/file"),
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
            dict(key="cluster_nginx_cold", label="cluster cold: 3 nginx proxy_cache (tuned) behind HAProxy",
                 server="cnginx", kind="miss", groups=["cnginx", G_UP, "haproxy"], phase="cluster",
                 is_nginx_ref=True, count="upstream", prep=cluster_nginx_prep,
                 url=lambda size, k: f"{self.ha_nginx}/v2/images/{up(size)}/file?cold={self.cluster_key[size]}"),
            dict(key="cluster_nginx_warm", label="cluster warm: 3 nginx proxy_cache (tuned) behind HAProxy",
                 server="cnginx", kind="hit", groups=["cnginx", G_UP, "haproxy"], phase="cluster",
                 is_nginx_ref=True, expect_cache_status="HIT",
                 url=lambda size, k: f"{self.ha_nginx}/v2/images/{up(size)}/file?cold={self.cluster_key[size]}"),
            dict(key="cluster_proxy_cold",
                 label="cluster cold: 3 glance-cache-proxies (one S3 remote tier) behind HAProxy",
                 server="cluster", kind="miss", groups=["nodes", G_UP, "s3", "haproxy"], phase="cluster",
                 nginx_ref="cluster_nginx_cold", count="upstream", expect_upstream=1,
                 rss=lambda: [n["pid"] for n in self.cl["nodes"]],
                 prep=self.cluster_cold_prep, after=self.cluster_cold_after,
                 url=lambda size, k: f"{self.ha_proxies}/v2/images/{up(size)}/file"),
            dict(key="cluster_proxy_warm", label="cluster warm: 3 glance-cache-proxies behind HAProxy",
                 server="cluster", kind="hit", groups=["nodes", G_UP, "s3", "haproxy"], phase="cluster",
                 nginx_ref="cluster_nginx_warm", count="upstream", expect_upstream=0,
                 rss=lambda: [n["pid"] for n in self.cl["nodes"]], prep=self.cluster_warm_prep,
                 url=lambda size, k: f"{self.ha_proxies}/v2/images/{up(size)}/file"),
        ]

    def run(self):
        o = self.o
        sizes = o.sizes
        only = o.only
        scs = self.scenarios()
        if only & {"main", "misses", "scrub", "tls"}:
            self.setup_images(sizes)
            for size in sizes:
                self.verify_bytes(size)
        if "main" in only:
            self.main_rounds(scs)
        if "misses" in only:
            self.miss_phase(scs)
        if "scrub" in only:
            self.scrub_phase(scs)
        if "tls" in only:
            self.tls_phase(scs)
        if "bursts" in only:
            self.bursts(scs)
        if only & {"cluster", "remote"}:
            if not self.cl:
                raise SystemExit("loadbench: the cluster rows need the cluster run.sh starts (no 'cluster' in the env file)")
            size = o.cluster_size
            if ("up", size) not in self.ids:
                self.setup_images([size])
                self.verify_bytes(size)
            self.verify_cluster(size)
            if "cluster" in only:
                self.cluster_phase(scs)
            if "remote" in only:
                self.remote_phase(scs)

    def main_rounds(self, scs):
        o = self.o
        for size in o.sizes:
            n_main = sum(1 for sc in scs if not sc.get("phase"))
            log(f"== {size_label(size)}: {o.runs} rounds of {n_main} scenarios x (1, {o.parallel}) clients")
            curl(["-o", "/dev/null", f"{self.nginx}/v2/images/{self.ids[('up', size)]}/file?warm={self.stamp}"],
                 timeout=o.curl_timeout)
            for rep in range(o.runs):
                self.round = ("main", size, rep)
                for sc in scs:
                    if sc.get("phase"):
                        continue
                    for clients in ([1] if sc.get("single_only") else [1, o.parallel]):
                        if sc.get("prep"):
                            sc["prep"](size, rep, clients)
                        self.record(sc, size, clients, self.sample(sc, size, clients))

    def miss_phase(self, scs):
        """More rounds of the single-client cold downloads of the largest image: nginx
        proxy_cache, Glance's own cache and the proxy, one after the other, the order rotating
        each round so that none always follows the same one. A row's samples from the main
        rounds and from these are one row; each round's three samples are also compared with
        each other (paired ratios), which cancels the drift of a shared machine's speed."""
        size = max(self.o.sizes)
        by_key = {sc["key"]: sc for sc in scs}
        keys = ("nginx_cold", "glance_miss", "proxy_miss")
        log(f"== cold downloads, {size_label(size)}: {self.o.miss_rounds} more rounds of nginx, Glance "
            "and the proxy, 1 client, in rotating order")
        for rep in range(self.o.miss_rounds):
            self.round = ("misses", size, rep)
            for key in keys[rep % 3:] + keys[:rep % 3]:
                sc = by_key[key]
                sc["prep"](size, 1000 + rep, 1)
                self.record(sc, size, 1, self.sample(sc, size, 1))
        self.round = None

    def by_round(self, key, size, clients):
        """The median MiB/s of row (`key`, `size`, `clients`) in each round that measured it."""
        row = self.rows.get((key, size, clients))
        rounds = {}
        for s in row["samples"] if row else []:
            if s.get("round"):
                rounds.setdefault(tuple(s["round"]), []).append(s["mibps"])
        return {r: statistics.median(v) for r, v in rounds.items()}

    def paired(self, key, ref, size):
        """Per-round ratios of row `key` to row `ref` (1 client, `size`): the rounds that
        measured both."""
        a, b = self.by_round(key, size, 1), self.by_round(ref, size, 1)
        return [a[r] / b[r] for r in a if r in b and b[r]]

    def bursts(self, scs):
        o = self.o
        big = o.big_size
        extra = [n for n in o.concurrency if n not in (1, o.parallel)]
        if extra and ("up", big) not in self.ids:
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
        """Hits of the largest image with a scrubber hashing at its default rate and without
        one, in pairs taken back to back. Two proxies serve: the bench's own, its scrubber off,
        and a twin (same configuration, its own port and cache directory) whose scrubber never
        runs out of due entries (scrub_interval = 0). A pair is a sample of hits on the twin
        with it running (SIGCONT) and one on the bench's proxy with the twin frozen (SIGSTOP),
        in alternating order: the scrubber's cost is all that differs, and the pairs are
        seconds apart, so the machine's drift does not enter. Also the twin's CPU with no
        client, and what its scrubber hashed during the hits (its admin endpoint's counter)."""
        size = max(self.o.sizes)
        by_key = {sc["key"]: sc for sc in scs}
        clients, per_round = self.o.parallel, self.o.scrub_samples
        log(f"== scrub cost, {size_label(size)}: {self.o.runs} rounds x {per_round} pairs of {clients} "
            "concurrent hits, on a proxy scrubbing and on one not, back to back")
        self.restart_proxy({"GLANCE_CACHE__PROXY__SCRUB_RATE": "0"})
        twin = self.start_twin()
        try:
            self.ensure_proxy_cached(size)
            self.fill_twin(size)
            for rep in range(self.o.runs):
                self.round = ("scrub", size, rep)
                os.kill(twin["pid"], signal.SIGCONT)
                b0, t0 = metric_total(twin["admin"], SCRUBBED), time.perf_counter()
                self.scrub_idle_cpu.append(self.idle_cpu(twin["pid"], 3.0))
                self.scrub_rate(self.scrub_idle_rate, twin["admin"], b0, t0)
                for key in ("proxy_hit_scrub", "proxy_hit_noscrub"):
                    by_key[key]["prep"](size, rep, clients)
                for k in range(per_round):
                    order = ("proxy_hit_scrub", "proxy_hit_noscrub")
                    # alternate which goes first: drift in the machine's speed cancels out
                    for key in (order if (rep + k) % 2 == 0 else order[::-1]):
                        scrubbing = key == "proxy_hit_scrub"
                        os.kill(twin["pid"], signal.SIGCONT if scrubbing else signal.SIGSTOP)
                        b0, t0 = metric_total(twin["admin"], SCRUBBED) if scrubbing else None, time.perf_counter()
                        self.record(by_key[key], size, clients, self.sample(by_key[key], size, clients))
                        if scrubbing:
                            self.scrub_rate(self.scrub_busy_rate, twin["admin"], b0, t0)
        finally:
            self.round = None
            self.stop_twin(twin)
            self.restart_proxy()

    def start_twin(self):
        """The scrub phase's second proxy: the bench proxy's configuration, its own port,
        cache directory and admin endpoint, its scrubber always busy. Its pid goes to the
        watchdog's list."""
        px = self.env["proxy"]
        tmp = os.path.dirname(px["log"])
        port, admin = free_port(), free_port()
        cache = os.path.join(tmp, "scrub-twin-cache")
        os.makedirs(cache, exist_ok=True)
        env = dict(os.environ, RUST_LOG=px["rust_log"],
                   GLANCE_CACHE__DEFAULT__BIND_PORT=str(port),
                   GLANCE_CACHE__DEFAULT__IMAGE_CACHE_DIR=cache,
                   GLANCE_CACHE__PROXY__SCRUB_INTERVAL="0",
                   GLANCE_CACHE__PROXY__ADMIN_LISTEN=f"127.0.0.1:{admin}")
        with open(os.path.join(tmp, "scrub-twin.log"), "ab") as logf:
            p = subprocess.Popen(px["cmd"], stdin=subprocess.DEVNULL, stdout=logf,
                                 stderr=subprocess.STDOUT, env=env)
        with open(os.path.join(tmp, "extra.pids"), "a") as f:
            f.write(f"{p.pid}\n")
        twin = {"pid": p.pid, "proc": p, "url": f"http://127.0.0.1:{port}", "admin": admin,
                "cache": cache}
        self.env["twin"] = twin
        deadline = time.monotonic() + 30
        while http_status("GET", f"{twin['url']}/versions", timeout=2) not in ("200", "300"):
            if p.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"loadbench: the scrub phase's second proxy did not start (log: {tmp}/scrub-twin.log)")
            time.sleep(0.1)
        return twin

    def fill_twin(self, size):
        """One download through the twin, and its commit (bounded)."""
        url = f"{self.env['twin']['url']}/v2/images/{self.ids[('up', size)]}/file"
        curl(["-o", "/dev/null", url], timeout=self.o.curl_timeout)
        iid = self.ids[("up", size)]

        def cached():
            doc = get_json(f"{self.env['twin']['url']}/v2/cache", self.admin)
            return bool(doc) and any(c.get("image_id") == iid for c in doc.get("cached_images", []))
        self.settle(cached, "the scrub phase's second proxy")

    def stop_twin(self, twin):
        """Stops the twin (thawed first) and removes its cache."""
        p = twin["proc"]
        for sig in (signal.SIGCONT, signal.SIGTERM):
            try:
                os.kill(p.pid, sig)
            except ProcessLookupError:
                pass
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        shutil.rmtree(twin["cache"], ignore_errors=True)
        self.env.pop("twin", None)

    @staticmethod
    def scrub_rate(into, admin, before, t0):
        """Appends to `into` the MiB/s the scrubber hashed since `t0`, when it had hashed
        `before` bytes (nothing when the admin endpoint did not answer)."""
        after, t1 = metric_total(admin, SCRUBBED), time.perf_counter()
        if before is not None and after is not None and t1 > t0:
            into.append((after - before) / MiB / (t1 - t0))

    def scrub_costs(self, size, clients):
        """The scrubber's cost in each round of the scrub phase: 1 - (median hit with it on /
        median with it off, of that round's samples). Each round measures both settings
        back to back, so the machine's drift between rounds does not enter."""
        on = self.by_round("proxy_hit_scrub", size, clients)
        off = self.by_round("proxy_hit_noscrub", size, clients)
        return [1 - on[r] / off[r] for r in sorted(on) if off.get(r)]

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

    @staticmethod
    def idle_cpu(pid, seconds):
        """The CPU of process `pid` (% of one core) over `seconds` with no client."""
        pids = pids_of(pid)
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
                 "proxy": "proxy", "nodes": "3 proxies", "node1": "proxy", "cnginx": "3 nginx",
                 "haproxy": "haproxy", "s3": "s3", "twin": "proxy"}
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
            ngx_ref = sc.get("nginx_ref", ngx_ref)
            ngx = self.ref(ngx_ref, size, clients)
            xd = f"{s['median'] / direct:.2f}" if direct and sc["key"] != ref_key else ("ref" if sc["key"] == ref_key else "–")
            if sc["key"] in ("nginx_cold", "nginx_warm", "nginx_warm_tls") or sc.get("is_nginx_ref"):
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
        if "main" in o.only:
            out.append("- `GET /v2/cache` with 10,000 entries: measured by the criterion bench "
                       "(`cargo bench --bench index`), not by this script")
        issue5, out = out, []
        for size in o.sizes:
            for n in (1, o.parallel):
                p, ng, g = med("proxy_miss", size, n), med("nginx_cold", size, n), med("glance_miss", size, n)
                if p and ng and g:
                    ok = p["median"] >= ng["median"] and p["median"] >= g["median"]
                    pairs = ""
                    if n == 1:
                        rn, rg = self.paired("proxy_miss", "nginx_cold", size), self.paired("proxy_miss", "glance_miss", size)
                        if rn and rg:
                            pairs = (f"; round by round ({len(rn)} rounds): median {statistics.median(rn):.2f}× nginx "
                                     f"cold (ahead in {sum(r >= 1 for r in rn)}), {statistics.median(rg):.2f}× "
                                     f"Glance's miss (ahead in {sum(r >= 1 for r in rg)})")
                    out.append(f"- miss verified with MD5 and SHA-512, {size_label(size)}, {n} client(s): proxy "
                               f"{p['median']:.0f} MiB/s ({p['n']} samples) = {p['median'] / ng['median']:.2f}× nginx "
                               f"cold ({ng['median']:.0f}), {p['median'] / g['median']:.2f}× Glance's own miss "
                               f"({g['median']:.0f}){pairs} (≥ both): {verdict(ok)}")
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
            pooled = 1 - on["median"] / off["median"]
            rounds = self.scrub_costs(size, o.parallel)
            # The verdict reads the costs round by round when there are rounds: pooled
            # medians mix in how much the machine's speed drifted between rounds.
            cost = statistics.median(rounds) if rounds else pooled
            each = (f"; round by round ({len(rounds)} rounds, both settings in each): "
                    + ", ".join(f"{100 * c:+.1f}%" for c in rounds)
                    + f", median {100 * cost:+.1f}%") if rounds else ""
            if len(rounds) >= 3:
                lo, hi = median_interval(rounds)
                each += f" (90% interval {100 * lo:+.1f}% … {100 * hi:+.1f}%)"
            idle = ""
            if self.scrub_idle_cpu:
                alone = statistics.median(self.scrub_idle_cpu)
                # What the hits themselves used, with the scrubber off: the scrubber's own
                # CPU as a share of it is the most it can cost CPU-bound hits (at nice 19 it
                # gets less than it asks for while they run).
                serving = sum(off["cpu"].values()) + off["client_cpu"]
                idle = f"; the scrubber alone, no client: {alone:.1f}% of one core"
                if serving:
                    idle += (f", {100 * alone / serving:.1f}% of the {serving:.0f}% of a core "
                             "the hits used (proxy, upstream, curl)")
                if self.scrub_idle_rate and self.scrub_busy_rate and statistics.median(self.scrub_idle_rate) > 0:
                    # Its CPU scales with the bytes it hashes: what it hashed during the hits,
                    # at the CPU per byte measured alone, is what it took from them.
                    idle_rate = statistics.median(self.scrub_idle_rate)
                    busy_rate = statistics.median(self.scrub_busy_rate)
                    during = alone * busy_rate / idle_rate
                    idle += (f"; during the hits it hashed {busy_rate:.1f} MiB/s (alone {idle_rate:.1f}; "
                             f"median of {len(self.scrub_busy_rate)} samples), about {during:.1f}% of one core")
                    if serving:
                        idle += f" = {100 * during / serving:.1f}% of the CPU the hits used"
            out.append(f"- scrubbing at its default rate (8 MiB/s), {o.parallel} concurrent {size_label(size)} hits "
                       f"({on['n']} + {off['n']} samples): {on['median']:.0f} MiB/s "
                       f"vs {off['median']:.0f} MiB/s with the scrubber off = {100 * pooled:+.1f}% cost pooled"
                       f"{each} (target < 5%){idle}: {verdict(cost < 0.05)}")
        text = []
        for title, lines in (("issue 5", issue5), ("issue 11", out),
                             ("cluster: 3 nodes behind HAProxy, one S3 remote tier",
                              self.cluster_targets(verdict, med))):
            if lines:
                text += ([""] if text else []) + [f"**Targets ({title}):**", ""] + lines
        return "\n".join(text)

    def cluster_targets(self, verdict, med):
        o, out = self.o, []
        size, n = o.cluster_size, o.cluster_clients
        pc, nc = med("cluster_proxy_cold", size, n), med("cluster_nginx_cold", size, n)
        if pc and nc:
            pups, nups = sorted(set(pc.get("up", []))), sorted(set(nc.get("up", [])))
            srcs = self.cluster_sources
            how = ""
            if srcs:
                peer = statistics.median(d.get("peer_stream", 0) for d in srcs)
                hit = statistics.median(d.get("hit", 0) for d in srcs)
                how = (f"; the proxies' fills per cold image (median): 1 from the upstream by the lease holder, "
                       f"{peer:.0f} streamed from it by the other nodes, {hit:.0f} from the bucket; "
                       "then one upload to the bucket")
            out.append(f"- cluster cold, {size_label(size)}, {n} concurrent clients through HAProxy "
                       f"(round robin over 3 nodes), {pc['n']} cold image(s): upstream downloads per cold image: "
                       f"proxies {pups}, nginx {nups} (target: exactly 1 for the proxies; nginx fills each "
                       f"instance on its own); aggregate {pc['median']:.0f} MiB/s vs nginx {nc['median']:.0f} "
                       f"MiB/s = {pc['median'] / nc['median']:.2f}×, last client done after {pc['wall']:.2f} s "
                       f"vs {nc['wall']:.2f} s, time to first byte {pc['ttfb']:.0f} ms vs {nc['ttfb']:.0f} ms"
                       f"{how}: {verdict(pups == [1])}")
        pw, nw = med("cluster_proxy_warm", size, n), med("cluster_nginx_warm", size, n)
        if pw and nw:
            out.append(f"- cluster warm, {size_label(size)}, {n} concurrent clients through HAProxy: proxies "
                       f"{pw['median']:.0f} MiB/s vs nginx {nw['median']:.0f} MiB/s = "
                       f"{pw['median'] / nw['median']:.2f}× (reported; no target)")
        r, g, h, m, s3 = (med(k, size, 1) for k in ("remote_hit", "glance_miss", "proxy_hit", "proxy_miss", "s3_get"))
        if r and g and h:
            ups = sorted(set(r.get("up", [])))
            ok = r["median"] >= g["median"] and r["median"] >= 0.5 * h["median"]
            miss = f"; the proxy's own miss from the upstream: {m['median']:.0f} MiB/s" if m else ""
            if s3:
                miss += (f"; the S3 server alone serves the object at {s3['median']:.0f} MiB/s (curl): the remote "
                         f"hit runs at {r['median'] / s3['median']:.2f}× the remote tier's own speed here")
            ds = {a: statistics.median(v) for a, v in self.digest_speeds.items() if v}
            if "md5" in ds and "sha512" in ds:
                bound = min(ds.values())
                miss += (f"; MD5 alone over the image runs at {ds['md5']:.0f} MiB/s and SHA-512 at "
                         f"{ds['sha512']:.0f} MiB/s on one core each (openssl dgst, page cache): a stream "
                         f"verified with both cannot pass {bound:.0f} MiB/s = {bound / h['median']:.2f}× the "
                         f"local hit, and the remote hit reaches {r['median'] / bound:.2f}× that bound")
            out.append(f"- remote hit, {size_label(size)}, 1 client (a node whose local copy was deleted, the image "
                       f"in the S3 bucket): {r['median']:.0f} MiB/s = {r['median'] / g['median']:.2f}× Glance's own "
                       f"cache miss ({g['median']:.0f} MiB/s; target ≥ 1×) and {r['median'] / h['median']:.2f}× the "
                       f"proxy's local hit ({h['median']:.0f} MiB/s; target ≥ 0.5×); upstream downloads {ups} "
                       f"(must be [0]), time to first byte {r['ttfb']:.1f} ms{miss}: {verdict(ok)}")
        return out


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


def md5_of_urls(urls):
    """md5_of_url of every url at once (concurrent downloads)."""
    procs = [subprocess.Popen(["bash", "-c", 'curl -sf --max-time 900 "$1" | md5sum', "md5", u],
                              stdout=subprocess.PIPE, text=True) for u in urls]
    out = []
    for p in procs:
        try:
            o, _ = p.communicate(timeout=960)
        except subprocess.TimeoutExpired:
            p.kill()
            o, _ = p.communicate()
        out.append(o.split()[0] if o else "(no answer)")
    return out


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


def write_report(path, text, partial=False):
    """A full run replaces the section between BEGIN and END; a partial one (--only) replaces
    (or appends) its own block inside that section and leaves the full run's text alone."""
    old = ""
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
    has_section = BEGIN in old and END in old and old.index(BEGIN) < old.index(END)
    if partial:
        sub = f"{ONLY_BEGIN}\n{text.rstrip()}\n{ONLY_END}"
        section = old[old.index(BEGIN) + len(BEGIN):old.index(END)] if has_section else "\n"
        if ONLY_BEGIN in section and ONLY_END in section:
            section = section[:section.index(ONLY_BEGIN)] + sub + section[section.index(ONLY_END) + len(ONLY_END):]
        else:
            section = section.rstrip("\n") + ("\n\n" if section.strip() else "\n") + sub + "\n"
        text = section.strip("\n")
    block = f"{BEGIN}\n{text}\n{END}"
    if has_section:
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
    ap.add_argument("--cluster-size", default="", help="image of the cluster and remote-hit rows (default: --big-size)")
    ap.add_argument("--cluster-clients", type=int, default=24)
    ap.add_argument("--only", default=",".join(GROUPS),
                    help=f"groups of rows to measure, comma-separated: {', '.join(GROUPS)} (default: all)")
    ap.add_argument("--miss-rounds", type=int, default=10,
                    help="rounds of the misses phase (cold downloads of the largest image, 1 client)")
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
        o.cluster_size = parse_size(o.cluster_size) if o.cluster_size else o.big_size
        o.only = {g.strip() for g in o.only.split(",") if g.strip()}
        if not o.only or o.only - set(GROUPS):
            raise ValueError(f"--only: groups are {', '.join(GROUPS)}")
    except ValueError as e:
        print(f"loadbench: {e}", file=sys.stderr)
        return 2
    if not o.sizes or o.runs < 1 or o.parallel < 2 or o.big_runs < 1 or min(o.concurrency) < 1 \
            or o.cluster_clients < 3:
        print("loadbench: need at least one size, --runs >= 1, --parallel >= 2, --big-runs >= 1, "
              "--cluster-clients >= 3", file=sys.stderr)
        return 2
    o.partial = o.only != set(GROUPS)
    largest = max(o.sizes + [o.big_size])
    # generous but bounded: 20 MiB/s for every byte of the largest burst, plus 2 minutes
    o.curl_timeout = int(120 + max(largest * max(o.concurrency + [o.parallel]),
                                   o.cluster_size * o.cluster_clients) / (20 * MiB))
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
    if o.partial:
        reduced.append(f"only the {', '.join(g for g in GROUPS if g in o.only)} rows (`--only`); the rows of "
                       "the other groups are those of the last full run" + (" above" if o.report else ""))
    if o.sizes != [64 * MiB, 1 << 30] and o.only & {"main", "misses", "scrub", "tls"}:
        reduced.append(f"images of {' and '.join(size_label(s) for s in o.sizes)} only "
                       f"(the issue asks for 64 MiB and 1 GiB)")
    if o.runs < 5:
        reduced.append(f"{o.runs} run(s) per row instead of at least 5")
    if o.cluster_size < (1 << 30) and o.only & {"cluster", "remote"}:
        reduced.append(f"the cluster and remote-hit rows use {size_label(o.cluster_size)} images instead of 1 GiB")
    if "bursts" in o.only and o.big_size < (1 << 30) and any(n not in (1, o.parallel) for n in o.concurrency):
        reduced.append(f"the {', '.join(str(n) for n in o.concurrency if n not in (1, o.parallel))}-client "
                       f"rows use {size_label(o.big_size)} images instead of 1 GiB")
    other = sum(t for t, _ in bench.other_cpu) / max(1e-9, sum(w for _, w in bench.other_cpu)) * 100
    m = machine(env)
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    v = m["versions"]
    head = [f"### Run of {when}" + (" (SMOKE: tiny image, numbers meaningless)" if o.smoke else "")
            + (f" — only {', '.join(g for g in GROUPS if g in o.only)}" if o.partial else ""),
            "",
            f"- machine: {m['cores']} cores ({m['cpu']}), {m['ram_gib']} GiB RAM, {m['os']}, kernel {m['kernel']}, "
            f"virtualization: {m['virt']}; load average at start: {m['load_at_start']}",
            f"- software: {v.get('proxy', '?')}; {v.get('glance', '?')} under uWSGI "
            f"({env['glance_upstream']['workers']} processes each); {v.get('nginx', '?')} (2 workers); {v.get('curl', '?')}"
            + (f"; {v.get('haproxy') or 'HAProxy'} (the cluster's balancer); the S3 remote tier: glance-cache-support's "
               "S3Server (s3s-fs 0.14, `--example s3-server`)" if o.only & {"cluster", "remote"} else ""),
            f"- command: `{o.command}` — {o.runs} run(s) per row (median shown)"
            + (f"; {o.miss_rounds} more rounds of the 1-client cold downloads of the {size_label(max(o.sizes))} "
               "image (nginx, Glance, the proxy, in rotating order)" if "misses" in o.only and o.miss_rounds else "")
            + (f", {o.big_runs} run(s) for the "
               f"{', '.join(str(n) for n in o.concurrency if n not in (1, o.parallel)) or '–'}-client rows"
               if "bursts" in o.only else "")
            + (f"; cluster rows: {o.cluster_clients} clients through HAProxy, {size_label(o.cluster_size)} image"
               if "cluster" in o.only else "")
            + (f"; remote-hit rows: {size_label(o.cluster_size)} image" if "remote" in o.only else "")
            + f"; measuring took {elapsed / 60:.1f} min",
            f"- CPU used by processes outside the benchmark while it measured: {other:.0f}% of one core on average"
            + (" — **noisy run**: other work shared the cores, compare rows of this run only" if other > 20 else ""),
            ]
    if reduced:
        head.append(f"- **reduced run**: {'; '.join(reduced)}")
    if bench.clear_refs_ok is False:
        head.append("- peak RSS from 20 ms VmRSS samples (VmHWM could not be reset)")
    if bench.errors:
        head.append(f"- **{len(bench.errors)} error(s)**: " + "; ".join(bench.errors[:10]))
    text = "\n".join(head) + "\n\n" + bench.table() + "\n\n" + bench.targets() + "\n"
    print(text)
    if o.report:
        write_report(o.report, text, partial=o.partial)
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
