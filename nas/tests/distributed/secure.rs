//! A broker as real clusters run it: accounts with passwords, a token, TLS with a private CA
//! that verifies clients (certificates made by `openssl` in the test). Searches run through it,
//! refused connections are one line before anything is written, and no secret reaches the run
//! folder or a log.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::harness::*;

const COORDINATOR_PASSWORD: &str = "pw-3f9c1b7e-coordinator";
const WORKER_PASSWORD: &str = "pw-81d2aa04-worker";
const TOKEN: &str = "tok-5e0b97c3-secret";

/// A private CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files.
struct Certificates {
    dir: PathBuf,
}

impl Certificates {
    fn make(dir: &Path) -> Option<Certificates> {
        let openssl = |args: &[&str]| Command::new("openssl").args(args).current_dir(dir).output();
        if let Err(e) = openssl(&["version"]) {
            return testkit::require::missing(&format!("openssl ({e})"), "apt-get install openssl; .ci/run does");
        }
        let key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        let run = |args: &[&str]| {
            let out = openssl(args).unwrap();
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        let ca = ["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=mixnas-test-ca"];
        run(&[&["req", "-x509"][..], &key, &ca].concat());
        for (who, usage, name) in [("server", "serverAuth", "/CN=localhost"), ("client", "clientAuth", "/CN=worker")] {
            let (keyfile, csr, pem, ext) =
                (format!("{who}.key"), format!("{who}.csr"), format!("{who}.pem"), format!("{who}.ext"));
            let extensions = format!("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage={usage}\n");
            std::fs::write(dir.join(&ext), extensions).unwrap();
            run(&[&["req"][..], &key, &["-keyout", &keyfile, "-out", &csr, "-subj", name]].concat());
            let sign = ["x509", "-req", "-in", &csr, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial"];
            run(&[&sign[..], &["-out", &pem, "-days", "2", "-extfile", &ext]].concat());
        }
        Some(Certificates { dir: dir.to_path_buf() })
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// The client's TLS flags.
    fn flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        for (flag, file) in [("--tls-ca", "ca.pem"), ("--tls-cert", "client.pem"), ("--tls-key", "client.key")] {
            flags.extend([flag.to_string(), self.path(file)]);
        }
        flags
    }
}

/// A TLS-only server that verifies client certificates, with one account of two users.
fn secure_server(certs: &Certificates) -> Option<Server> {
    let conf = format!(
        r#"
tls {{
  cert_file: "{}"
  key_file: "{}"
  ca_file: "{}"
  verify: true
  timeout: 5
}}
accounts {{
  MIXNAS {{
    jetstream: enabled
    users: [
      {{ user: coordinator, password: "{COORDINATOR_PASSWORD}" }}
      {{ user: worker, password: "{WORKER_PASSWORD}" }}
    ]
  }}
}}
"#,
        certs.path("server.pem"),
        certs.path("server.key"),
        certs.path("ca.pem"),
    );
    Server::with_config(&conf)
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Every file under `dir` as text.
fn texts_under(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        if path.is_dir() {
            found.extend(texts_under(&path));
        } else {
            found.push((path.clone(), String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned()));
        }
    }
    found
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [COORDINATOR_PASSWORD, WORKER_PASSWORD, TOKEN] {
        assert!(!text.contains(secret), "{what} shows a secret:\n{text}");
    }
}

#[test]
fn tls_and_passwords_carry_a_search_and_no_secret_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(certs) = Certificates::make(tmp.path()) else { return };
    let Some(server) = secure_server(&certs) else { return };
    let addr = &server.addr;
    // One worker with everything in flags and the URL, one with everything in NATS_* variables.
    let in_url = format!("tls://worker:{WORKER_PASSWORD}@{addr}");
    let mut flagged = strings(&["worker", "--broker", &in_url, "--threads", "1"]);
    flagged.extend(certs.flags());
    let by_flags = Nas::spawn(&flagged.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    let env = [
        ("NATS_URL", format!("tls://{addr}")),
        ("NATS_USER", "worker".to_string()),
        ("NATS_PASSWORD", WORKER_PASSWORD.to_string()),
        ("NATS_CA", certs.path("ca.pem")),
        ("NATS_CERT", certs.path("client.pem")),
        ("NATS_KEY", certs.path("client.key")),
    ];
    let by_env = Nas::spawn(&["worker", "--threads", "1"], &env);
    let dir = tmp.path().join("run");
    let broker = format!("tls://coordinator:{COORDINATOR_PASSWORD}@{addr}");
    let mut extra = strings(&["--broker", &broker, "--ack-wait", "1s", "--max-deliver", "3"]);
    extra.extend(certs.flags());
    let mut coordinator = run_search(&search_args(&dir, 12, &extra.iter().map(String::as_str).collect::<Vec<_>>()));
    assert_eq!(coordinator.wait(Duration::from_secs(60)), 0, "{}", coordinator.log());
    assert_eq!(journal(&dir), local_run(tmp.path(), 12));
    let logs = [("coordinator", coordinator.log()), ("worker (flags)", by_flags.log()), ("worker (env)", by_env.log())];
    assert!(logs[0].1.contains("coordinator:***@"), "the URL is shown masked:\n{}", logs[0].1);
    for (who, log) in &logs {
        assert_no_secret(who, log);
    }
    for (path, text) in texts_under(&dir) {
        assert_no_secret(&path.display().to_string(), &text);
    }
}

/// `nas ARGS` exits 2 within seconds with one line containing `expected` and no secret.
fn refused(args: &[String], env: &[(&str, String)], expected: &str) {
    let start = Instant::now();
    let mut nas = Nas::spawn(&args.iter().map(String::as_str).collect::<Vec<_>>(), env);
    assert_eq!(nas.wait(Duration::from_secs(20)), 2, "{args:?}: {}", nas.log());
    let log = nas.log();
    assert_eq!(log.lines().count(), 1, "{args:?}: {log}");
    assert!(log.contains(expected), "{args:?}: expected {expected:?} in {log}");
    assert_no_secret("the error line", &log);
    assert!(start.elapsed() < Duration::from_secs(15), "{args:?} took {:?}", start.elapsed());
}

#[test]
fn refused_connections_are_one_line_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(certs) = Certificates::make(tmp.path()) else { return };
    let Some(server) = secure_server(&certs) else { return };
    let addr = &server.addr;
    let dir = tmp.path().join("run");
    let search = |url: String, tls: Vec<String>| {
        let mut extra = vec!["--broker".to_string(), url];
        extra.extend(tls);
        search_args(&dir, 4, &extra.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let good = format!("tls://coordinator:{COORDINATOR_PASSWORD}@{addr}");
    let wrong = format!("tls://coordinator:{WORKER_PASSWORD}@{addr}");
    refused(&search(wrong, certs.flags()), &[], "refused these credentials");
    // The server's certificate is signed by a CA the client was not given.
    refused(&search(good.clone(), vec![]), &[], "TLS");
    // A plain client against a TLS-only server.
    refused(&search(format!("nats://coordinator:{COORDINATOR_PASSWORD}@{addr}"), vec![]), &[], "NATS broker");
    // No client certificate for a server that verifies clients.
    refused(&search(good, vec!["--tls-ca".into(), certs.path("ca.pem")]), &[], "NATS broker");
    let worker = strings(&["worker", "--broker", &format!("tls://{addr}")]);
    let env = [("NATS_USER", "worker".to_string()), ("NATS_PASSWORD", "not-it".to_string())];
    let env: Vec<(&str, String)> = env.into_iter().chain([("NATS_CA", certs.path("ca.pem"))]).collect();
    refused(&[worker.clone(), certs.flags()].concat(), &env, "refused these credentials");
    assert!(!dir.exists(), "nothing is written when the broker refuses the connection");
}

#[test]
fn a_token_from_a_file_or_the_environment_authenticates() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(server) = Server::with_config(&format!("authorization {{ token: \"{TOKEN}\" }}\n")) else { return };
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let url = format!("nats://{}", server.addr);
    let w = Nas::spawn(&["worker", "--broker", &url, "--threads", "1"], &[("NATS_TOKEN", TOKEN.to_string())]);
    let dir = tmp.path().join("run");
    let token_arg = token_file.display().to_string();
    let extra = ["--broker", &url, "--token-file", &token_arg, "--ack-wait", "1s"];
    let mut coordinator = run_search(&search_args(&dir, 4, &extra));
    assert_eq!(coordinator.wait(Duration::from_secs(60)), 0, "{}", coordinator.log());
    assert_eq!(journal(&dir).len(), 4);
    assert_no_secret("the worker's log", &w.log());
    let no_token = search_args(&tmp.path().join("other"), 4, &["--broker", &url]);
    refused(&no_token, &[], "NATS broker");
}

/// Instants from a fixed-seed generator: the test is random in where it strikes, repeatably.
struct Instants(u64);

impl Instants {
    fn next_ms(&mut self, from: u64, to: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        from + (self.0 >> 33) % (to - from)
    }
}

#[test]
fn chaos_workers_and_coordinator_killed_lose_and_double_nothing() {
    const TRIALS: usize = 150;
    let tmp = tempfile::tempdir().unwrap();
    let Some(certs) = Certificates::make(tmp.path()) else { return };
    let Some(server) = secure_server(&certs) else { return };
    let env = [
        ("NATS_URL", format!("tls://{}", server.addr)),
        ("NATS_USER", "worker".to_string()),
        ("NATS_PASSWORD", WORKER_PASSWORD.to_string()),
        ("NATS_CA", certs.path("ca.pem")),
        ("NATS_CERT", certs.path("client.pem")),
        ("NATS_KEY", certs.path("client.key")),
        ("MIXNAS_TEST_WORKER_DELAY_MS", "60".to_string()),
    ];
    let start_worker = || Nas::spawn(&["worker", "--threads", "1"], &env);
    let mut workers: Vec<Nas> = (0..3).map(|_| start_worker()).collect();
    let dir = tmp.path().join("run");
    let broker = format!("tls://coordinator:{COORDINATOR_PASSWORD}@{}", server.addr);
    let mut flags = strings(&["--broker", &broker, "--ack-wait", "1s", "--max-deliver", "20"]);
    flags.extend(certs.flags());
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let dir_arg = dir.display().to_string();
    let resume: Vec<&str> = [&["--resume", dir_arg.as_str()][..], &flags[..]].concat();
    let mut coordinator = run_search(&search_args(&dir, TRIALS, &flags));
    let journalled = || std::fs::read_to_string(dir.join("trials.jsonl")).map_or(0, |t| t.lines().count());
    let (mut instants, mut worker_kills, mut coordinator_killed) = (Instants(2024), 0, false);
    let deadline = Instant::now() + Duration::from_secs(240);
    while coordinator.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the run hangs:\n{}", coordinator.log());
        std::thread::sleep(Duration::from_millis(instants.next_ms(100, 500)));
        if worker_kills < 10 {
            let victim = instants.next_ms(0, 3) as usize;
            workers[victim].kill();
            workers[victim] = start_worker();
            worker_kills += 1;
        }
        if !coordinator_killed && journalled() >= TRIALS / 3 {
            coordinator.kill();
            coordinator_killed = true;
            coordinator = run_search(&search_args(&dir, TRIALS, &resume));
        }
    }
    assert_eq!(coordinator.wait(Duration::from_secs(1)), 0, "{}", coordinator.log());
    assert!(worker_kills == 10 && coordinator_killed, "{worker_kills} worker kills");
    let distributed = journal(&dir);
    assert_eq!(distributed.keys().copied().collect::<Vec<_>>(), (0..TRIALS as u64).collect::<Vec<_>>());
    assert_eq!(distributed, local_run(tmp.path(), TRIALS));
    for (path, text) in texts_under(&dir) {
        assert_no_secret(&path.display().to_string(), &text);
    }
}
