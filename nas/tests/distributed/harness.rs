//! What the distributed tests share: a real nats-server (plain, or from a config with accounts
//! and TLS) on loopback, `nas` children whose stderr is collected, and the journal compared.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const NAS: &str = env!("CARGO_BIN_EXE_nas");

/// A port nothing listens on: on 127.0.0.2, where the tests' nats-servers (127.0.0.1) never bind.
pub fn unused_port() -> u16 {
    TcpListener::bind("127.0.0.2:0").unwrap().local_addr().unwrap().port()
}

/// A nats-server with JetStream on a free loopback port, killed on drop.
pub struct Server {
    pub child: Child,
    pub url: String,
    /// HOST:PORT, for URLs with another scheme or credentials.
    pub addr: String,
    _store: tempfile::TempDir,
}

impl Server {
    /// A plain server: no accounts, no TLS.
    pub fn start() -> Option<Server> {
        Self::launch(None)
    }

    /// A server that also reads the configuration `conf` (accounts, TLS, ...).
    pub fn with_config(conf: &str) -> Option<Server> {
        Self::launch(Some(conf))
    }

    /// Lets nats-server pick its own port (`-p -1`) and reads it back from the ports file: a port
    /// chosen here and handed over could be taken by a parallel test's server in between.
    fn launch(conf: Option<&str>) -> Option<Server> {
        let store = tempfile::tempdir().unwrap();
        let mut command = Command::new("nats-server");
        if let Some(conf) = conf {
            let path = store.path().join("server.conf");
            std::fs::write(&path, conf).unwrap();
            command.arg("-c").arg(path);
        }
        let spawned = command
            .args(["-js", "-a", "127.0.0.1", "-p", "-1", "-sd"])
            .arg(store.path())
            .arg("--ports_file_dir")
            .arg(store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                return testkit::require::missing(
                    &format!("nats-server ({e})"),
                    "apt-get install nats-server; .ci/run does",
                )
            }
        };
        let ports_file = store.path().join(format!("nats-server_{}.ports", child.id()));
        let deadline = Instant::now() + Duration::from_secs(10);
        let url = loop {
            let ports: Option<serde_json::Value> =
                std::fs::read_to_string(&ports_file).ok().and_then(|t| serde_json::from_str(&t).ok());
            if let Some(url) = ports.as_ref().and_then(|p| p["nats"][0].as_str()) {
                break url.to_string();
            }
            assert!(child.try_wait().unwrap().is_none(), "nats-server exited at start");
            assert!(Instant::now() < deadline, "nats-server wrote no ports file");
            std::thread::sleep(Duration::from_millis(50));
        };
        let addr = url.split_once("://").map_or(url.as_str(), |(_, a)| a).to_string();
        while TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not open {addr}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Server { child, url, addr, _store: store })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `nas` child whose stderr is collected, killed (SIGKILL) on drop.
pub struct Nas {
    pub child: Child,
    log: Arc<Mutex<String>>,
}

impl Nas {
    pub fn spawn(args: &[&str], env: &[(&str, String)]) -> Nas {
        let mut cmd = Command::new(NAS);
        cmd.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (sink, stderr) = (log.clone(), child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Nas { child, log }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits for the exit code, failing the test after `limit`.
    pub fn wait(&mut self, limit: Duration) -> i32 {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100)); // let the log thread drain
                return status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "nas did not finish in {limit:?}; its log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Nas {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn worker(server: &Server, env: &[(&str, String)]) -> Nas {
    Nas::spawn(&["worker", "--broker", &server.url, "--threads", "1"], env)
}

/// `nas search` on the surrogate; `extra` adds the broker flags or --resume.
pub fn search_args(out: &Path, trials: usize, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = ["search", "--evaluator", "surrogate", "--seed", "5", "--workers", "2", "--quiet"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    a.extend(["--target-latency".into(), "40ms".into(), "--trials".into(), trials.to_string()]);
    if !extra.contains(&"--resume") {
        a.extend(["--out".into(), out.display().to_string()]);
    }
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

pub fn broker_flags<'a>(server: &'a Server, max_deliver: &'a str) -> [&'a str; 6] {
    ["--broker", &server.url, "--ack-wait", "1s", "--max-deliver", max_deliver]
}

pub fn run_search(args: &[String]) -> Nas {
    Nas::spawn(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[])
}

/// The journal by trial id, without timestamps; fails if an id appears twice.
pub fn journal(dir: &Path) -> BTreeMap<u64, serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("trials.jsonl")).unwrap();
    let mut by_id = BTreeMap::new();
    for line in text.lines() {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        let fields = v.as_object_mut().unwrap();
        fields.remove("started_at");
        fields.remove("finished_at");
        let id = fields["id"].as_u64().unwrap();
        assert!(by_id.insert(id, v).is_none(), "trial {id} journalled twice");
    }
    by_id
}

pub fn local_run(tmp: &Path, trials: usize) -> BTreeMap<u64, serde_json::Value> {
    let dir = tmp.join("local");
    assert_eq!(run_search(&search_args(&dir, trials, &[])).wait(Duration::from_secs(60)), 0);
    journal(&dir)
}

pub fn wait_until(limit: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn count(log: &str, needle: &str) -> usize {
    log.matches(needle).count()
}
