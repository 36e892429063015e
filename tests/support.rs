//! Processes the integration tests and the lattice benchmark start: a nats-server, and a whole
//! wasmCloud 1.9 lattice (nats-server + wadm + host from tools/lattice), each on 127.0.0.1 and
//! free ports, stopped by PID.
// Test support: a failed setup step aborts with a message, like a test.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, missing_debug_implementations)]

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A nats-server this test started, on 127.0.0.1 and a free port; killed (by PID) on drop.
pub struct NatsServer {
    child: Child,
    pub url: String,
    dir: tempfile::TempDir,
}

pub fn nats_server_binary() -> PathBuf {
    if let Ok(p) = std::env::var("EDGECELL_NATS_SERVER") {
        return PathBuf::from(p);
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let local = repo.join("tools/bin/nats-server");
    if local.exists() {
        return local;
    }
    PathBuf::from("nats-server")
}


impl NatsServer {
    /// JetStream on, defaults otherwise.
    pub fn start() -> Self {
        Self::start_with_config("")
    }

    /// JetStream on, plus `config` (nats-server configuration text, e.g. `max_payload: 16384`).
    pub fn start_with_config(config: &str) -> Self {
        Self::spawn(config, true)
    }

    /// A server from `config` on 127.0.0.1 and a free port, with JetStream (store in a temp
    /// dir) or without.
    pub fn spawn(config: &str, jetstream: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let bin = nats_server_binary();
        let conf = dir.path().join("nats.conf");
        std::fs::write(&conf, config).unwrap();
        let mut cmd = Command::new(&bin);
        // (its log says when it cut off a slow consumer, which a client sees only as a timeout)
        cmd.arg("-c").arg(&conf).args(["-a", "127.0.0.1", "-p", &port.to_string()]).arg("-l").arg(dir.path().join("nats.log"));
        if jetstream {
            cmd.args(["-js", "-sd"]).arg(dir.path());
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} ({e}): run `make setup` to install nats-server", bin.display()));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen on 127.0.0.1:{port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, url: format!("nats://127.0.0.1:{port}"), dir }
    }
}

impl NatsServer {
    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats.log")
    }

    /// Its warnings and errors (slow consumers, dropped connections), the last 40, for failure
    /// messages.
    pub fn log_warnings(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| l.contains("[WRN]") || l.contains("[ERR]")).collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where the lattice binaries are, or `None` (with a note) when this run has no lattice.
pub fn lattice_bin() -> Option<PathBuf> {
    match std::env::var("EDGECELL_LATTICE_BIN") {
        Ok(d) => Some(PathBuf::from(d)),
        Err(_) => {
            assert!(
                std::env::var("EDGECELL_REQUIRE_LATTICE").as_deref() != Ok("1"),
                "EDGECELL_REQUIRE_LATTICE=1 but EDGECELL_LATTICE_BIN is not set: run `make e2e`"
            );
            eprintln!("lattice tests skipped: EDGECELL_LATTICE_BIN is not set (run `make e2e`)");
            None
        }
    }
}

/// A process this test started; stopped by PID with SIGTERM (then SIGKILL after `grace`).
pub struct Proc {
    pub name: &'static str,
    pub child: Child,
    grace: Duration,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &'static str, cmd: &mut Command, log: PathBuf, grace: Duration) -> Self {
        let out = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({e}): build it with `make lattice`"));
        Self { name, child, grace, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the first stdout line starting with `prefix` and returns the rest of it; a
    /// thread keeps draining stdout afterwards so the process never blocks on a full pipe.
    pub fn stdout_value(&mut self, prefix: &'static str, timeout: Duration) -> String {
        let stdout = self.child.stdout.take().expect("stdout already taken");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(v) = line.strip_prefix(prefix) {
                    let _ = tx.send(v.to_owned());
                }
            }
        });
        rx.recv_timeout(timeout).unwrap_or_else(|_| panic!("{} printed no `{prefix}` within {timeout:?}:\n{}", self.name, self.log_tail()))
    }

    /// The last lines of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        // lossy: a provider's output in the host's log need not be UTF-8
        let bytes = std::fs::read(&self.log).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    pub fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        let _ = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
        let deadline = Instant::now() + self.grace;
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("{} (pid {}) ignored SIGTERM for {:?}; killing it", self.name, self.pid(), self.grace);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// PIDs of live processes whose command line mentions `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(mut f) = std::fs::File::open(e.path().join("cmdline")) else { continue };
        let mut raw = Vec::new();
        if f.read_to_end(&mut raw).is_err() || raw.is_empty() {
            continue;
        }
        let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmd.contains(needle) {
            out.push((pid, cmd));
        }
    }
    out
}

/// An OTLP/HTTP trace receiver (`edgecell-lattice otlp-sink`) on loopback: what the host and
/// the providers export lands in a file, one JSON object per span.
pub struct TraceSink {
    pub proc: Proc,
    /// Where exporters send traces (`http://127.0.0.1:<port>/v1/traces`).
    pub endpoint: String,
    pub file: PathBuf,
}

impl TraceSink {
    pub fn start(bin: &Path, dir: &Path) -> Self {
        let file = dir.join("spans.jsonl");
        let mut proc = Proc::spawn(
            "otlp-sink",
            Command::new(bin.join("edgecell-lattice")).args(["otlp-sink", "--listen", "127.0.0.1:0", "--out"]).arg(&file),
            dir.join("otlp-sink.log"),
            Duration::from_secs(2),
        );
        let addr = proc.stdout_value("listening=", Duration::from_secs(10));
        Self { proc, endpoint: format!("http://{addr}/v1/traces"), file }
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&self.file).unwrap_or_default();
        text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
}

/// nats-server + wadm + one host, on loopback; stopped in reverse order on drop.
pub struct Lattice {
    pub host: Proc,
    pub wadm: Proc,
    /// The server wadm and the control clients use (the hub, when there is an edge).
    pub nats: NatsServer,
    /// Set by [`Lattice::start_on_leaf`]: the edge leaf node the host is on.
    pub edge: Option<NatsServer>,
    pub host_id: String,
    pub metrics_port: u16,
    pub bin: PathBuf,
    /// The host's TMPDIR: provider binaries are unpacked below it.
    pub tmp: tempfile::TempDir,
    /// Set by [`Lattice::start_traced`]: the host (and the providers it starts) export here.
    pub traces: Option<TraceSink>,
    /// Held while this lattice runs: a lattice (NATS, wadm, host, providers) takes the whole of
    /// a 2-core machine, so tests run one lattice at a time. Declared last, so dropped last.
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
}

impl Lattice {
    pub fn start(bin: &Path, labels: &[&str]) -> Self {
        Self::start_with(bin, labels, false)
    }

    /// Like [`Lattice::start`], with an OTLP trace sink the host and its providers export to.
    pub fn start_traced(bin: &Path, labels: &[&str]) -> Self {
        Self::start_with(bin, labels, true)
    }

    /// The three-tier layout of `manifests/nats/` cut to one edge: the hub from `core.conf`
    /// (JetStream domain `core`, a leaf node listener) with wadm on it, and the host on a leaf
    /// node from `edge-a.conf` (no JetStream; the host reaches the hub's with domain `core`).
    /// Ports are free ones, not the files' own; monitoring is off.
    pub fn start_on_leaf(bin: &Path, labels: &[&str]) -> Self {
        let leaf_port = free_port();
        let read = |f: &str| std::fs::read_to_string(repo().join("manifests/nats").join(f)).unwrap();
        let local = |text: String| {
            text.lines()
                .filter(|l| !l.trim_start().starts_with("http:") && !l.trim_start().starts_with("store_dir:"))
                .collect::<Vec<_>>()
                .join("\n")
                .replace("127.0.0.1:7422", &format!("127.0.0.1:{leaf_port}"))
        };
        let hub = NatsServer::spawn(&local(read("core.conf")), true);
        let edge = NatsServer::spawn(&local(read("edge-a.conf")), false);
        Self::start_with_servers(bin, labels, false, hub, Some(edge))
    }

    /// The URL producers and consumers use: the edge leaf node if there is one.
    pub fn client_url(&self) -> &str {
        self.edge.as_ref().map_or(&self.nats.url, |e| &e.url)
    }

    fn start_with(bin: &Path, labels: &[&str], traced: bool) -> Self {
        Self::start_with_servers(bin, labels, traced, NatsServer::start(), None)
    }

    fn start_with_servers(bin: &Path, labels: &[&str], traced: bool, nats: NatsServer, edge: Option<NatsServer>) -> Self {
        static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let one_at_a_time = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let tmp = tempfile::tempdir().unwrap();
        let addr = nats.url.trim_start_matches("nats://").to_owned();
        let wadm = Proc::spawn(
            "wadm",
            Command::new(bin.join("edgecell-lattice-wadm")).args(["--nats-server", &addr]).env("TMPDIR", tmp.path()),
            tmp.path().join("wadm.log"),
            Duration::from_secs(5),
        );
        let mut host_cmd = Command::new(bin.join("edgecell-lattice-host"));
        // a provider call that waits behind a loaded CPU must not hit the 2 s default wRPC
        // timeout: that fails the import and traps the invocation, so its message gets no reply
        let host_nats = edge.as_ref().map_or(&nats.url, |e| &e.url);
        host_cmd.args(["--nats-url", host_nats, "--allow-file-load", "--heartbeat-secs", "2", "--rpc-timeout-ms", "10000"]).env("TMPDIR", tmp.path());
        if edge.is_some() {
            host_cmd.args(["--js-domain", "core"]);
        }
        for l in labels {
            host_cmd.args(["--label", l]);
        }
        let traces = traced.then(|| TraceSink::start(bin, tmp.path()));
        if let Some(sink) = &traces {
            host_cmd.args(["--otlp-endpoint", &sink.endpoint]);
        }
        let mut host = Proc::spawn("host", &mut host_cmd, tmp.path().join("host.log"), Duration::from_secs(15));
        // the launcher prints `host_id=…` once the host is up
        let host_id = host.stdout_value("host_id=", Duration::from_secs(60));
        Self { _one_at_a_time: one_at_a_time, host, wadm, nats, edge, host_id, metrics_port: free_port(), bin: bin.to_owned(), tmp, traces }
    }

    pub fn ctl(&self) -> Command {
        let mut c = Command::new(self.bin.join("edgecell-lattice"));
        c.env("WASMCLOUD_NATS_URL", &self.nats.url);
        c
    }

    /// Deploys a manifest (path relative to the repository) pointed at this lattice's NATS and metrics port; waits
    /// for `deployed`.
    pub fn deploy(&self, manifest: &str) {
        self.deploy_with(manifest, &[]);
    }

    /// [`Self::deploy`] with more text replacements (`from`, `to`) made in the manifest first,
    /// e.g. to add a named config property.
    pub fn deploy_with(&self, manifest: &str, replace: &[(&str, &str)]) {
        let mut cmd = self.ctl();
        cmd.arg("deploy")
            .arg(repo().join(manifest))
            .args(["--replace", &format!("nats://127.0.0.1:4222={}", self.client_url())])
            .args(["--replace", &format!("127.0.0.1:9464=127.0.0.1:{}", self.metrics_port)]);
        for (from, to) in replace {
            cmd.args(["--replace", &format!("{from}={to}")]);
        }
        let out = cmd.args(["--wait-secs", "240"]).output().unwrap();
        assert!(
            out.status.success(),
            "deploy {manifest} failed:\n{}\n{}\n--- host log ---\n{}\n--- wadm log ---\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.host.log_tail(),
            self.wadm.log_tail()
        );
        eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    }

    pub fn undeploy(&self, app: &str) {
        let out = self.ctl().args(["undeploy", app]).output().unwrap();
        assert!(out.status.success(), "undeploy: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Prometheus text from the metrics provider.
    pub fn scrape(&self) -> String {
        http_get(self.metrics_port, "/metrics")
    }

    /// Stops host, wadm and NATS (in that order) and checks nothing the host started is left.
    pub fn shutdown(mut self) {
        self.host.stop();
        self.wadm.stop();
        if let Some(sink) = self.traces.as_mut() {
            sink.proc.stop();
        }
        let tmp = self.tmp.path().to_string_lossy().into_owned();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = processes_mentioning(&tmp);
            if left.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "processes left behind: {left:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

pub fn http_get(port: u16, path: &str) -> String {
    use std::io::Write as _;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default()
}

/// Sum of a metric's samples whose label set contains every `(k, v)` of `filter`.
pub fn metric_sum(text: &str, name: &str, filter: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, labels) = series.split_once('{').map_or((series, ""), |(m, rest)| (m, rest.trim_end_matches('}')));
            if metric != name {
                return None;
            }
            let ok = filter.iter().all(|(k, v)| labels.contains(&format!("{k}=\"{v}\"")));
            ok.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}


/// Live child processes of `parent`: (pid, command line).
pub fn children_of(parent: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        // pid (comm) state ppid ...: comm may contain spaces, so split after the last ')'
        let Some(ppid) = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok()) else {
            continue;
        };
        if ppid == parent {
            let cmd = std::fs::read(e.path().join("cmdline")).map(|c| String::from_utf8_lossy(&c).replace('\0', " ")).unwrap_or_default();
            out.push((pid, cmd));
        }
    }
    out
}
