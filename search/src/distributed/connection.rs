//! How coordinators and workers reach a NATS server and prove who they are, as NATS users give
//! it: credentials in the URL (`nats://user:pass@host`, `nats://token@host`), a token, an NKey
//! seed or a `.creds` file, and TLS (`tls://host`, a private CA, client certificates).
//!
//! Secrets stay in this type: what is printed or written is [`Connection::shown`], the URL with
//! its credentials masked, and `Debug` shows no secret either.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::{ConnectErrorKind, ConnectOptions};

/// Where the NATS server is and how to authenticate to it.
#[derive(Clone, Default)]
pub struct Connection {
    /// `nats://` or `tls://` URL(s), comma-separated; may carry `user:pass@` or `token@`.
    pub url: String,
    /// User and password given apart from the URL.
    pub user: Option<(String, String)>,
    /// A token given apart from the URL.
    pub token: Option<String>,
    /// A `.creds` file (JWT and NKey seed) or a file holding a bare NKey seed.
    pub creds: Option<PathBuf>,
    /// The CA that signed the server's certificate, when it is not a public one.
    pub tls_ca: Option<PathBuf>,
    /// Client certificate and key, for servers that verify clients.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("url", &self.shown())
            .field("user", &self.user.as_ref().map(|(u, _)| format!("{u}:***")))
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("creds", &self.creds)
            .field("tls_ca", &self.tls_ca)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .finish()
    }
}

/// `url` with the password (or a token standing as the user) of each address replaced by `***`.
pub fn mask_url(url: &str) -> String {
    url.split(',').map(mask_address).collect::<Vec<_>>().join(",")
}

fn mask_address(address: &str) -> String {
    let (scheme, rest) = address.split_once("://").map_or(("", address), |(s, r)| (s, r));
    let Some((userinfo, host)) = rest.rsplit_once('@') else { return address.to_string() };
    let masked = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None => "***".to_string(),
    };
    let scheme = if scheme.is_empty() { String::new() } else { format!("{scheme}://") };
    format!("{scheme}{masked}@{host}")
}

/// Credentials written into a URL: `user:pass@` or `token@`.
#[derive(Debug, PartialEq)]
enum UrlCredentials {
    User(String, String),
    Token(String),
}

/// `url` without credentials, and the first address's credentials (percent-decoded). The client
/// library ignores credentials in URLs, and a URL without them is safe in its error messages.
fn split_credentials(url: &str) -> (String, Option<UrlCredentials>) {
    let mut found = None;
    let bare: Vec<String> = url
        .split(',')
        .map(|address| {
            let (scheme, rest) = address.split_once("://").map_or(("", address), |(s, r)| (s, r));
            let Some((userinfo, host)) = rest.rsplit_once('@') else { return address.to_string() };
            if found.is_none() {
                found = Some(match userinfo.split_once(':') {
                    Some((user, pass)) => UrlCredentials::User(percent_decoded(user), percent_decoded(pass)),
                    None => UrlCredentials::Token(percent_decoded(userinfo)),
                });
            }
            if scheme.is_empty() {
                host.to_string()
            } else {
                format!("{scheme}://{host}")
            }
        })
        .collect();
    (bare.join(","), found)
}

/// `%XX` escapes decoded (as URLs carry reserved characters in passwords).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a credentials file holds.
enum Credentials {
    /// A `.creds` file: the user JWT and its NKey seed.
    Decorated,
    /// One NKey seed (`SU...`).
    Seed(String),
}

fn read_credentials(path: &Path) -> Result<Credentials, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("--creds {}: {e}", path.display()))?;
    if text.contains("BEGIN NATS USER JWT") {
        return Ok(Credentials::Decorated);
    }
    let seed = text.trim();
    if seed.starts_with("SU") && !seed.contains(char::is_whitespace) {
        return Ok(Credentials::Seed(seed.to_string()));
    }
    Err(format!(
        "--creds {}: neither a .creds file (with a NATS USER JWT block) nor a user NKey seed (SU...)",
        path.display()
    ))
}

fn existing(flag: &str, path: &Path) -> Result<PathBuf, String> {
    if path.is_file() {
        Ok(path.to_path_buf())
    } else {
        Err(format!("{flag} {}: no such file", path.display()))
    }
}

impl Connection {
    /// A plain connection to `url` with whatever credentials it carries.
    pub fn to(url: &str) -> Self {
        Connection { url: url.into(), ..Default::default() }
    }

    /// The URL as it may be printed or written: credentials masked.
    pub fn shown(&self) -> String {
        mask_url(&self.url)
    }

    /// The address to dial (no credentials in it) and the client options these settings make;
    /// files are read and checked here, and at most one way of authenticating is allowed.
    async fn options(&self, who: &str) -> Result<(String, ConnectOptions), String> {
        let (bare, in_url) = split_credentials(&self.url);
        let ways = [in_url.is_some(), self.user.is_some(), self.token.is_some(), self.creds.is_some()];
        if ways.iter().filter(|w| **w).count() > 1 {
            return Err("the broker's credentials: give one of a user and password (in the URL or NATS_USER and \
                        NATS_PASSWORD), a token (in the URL, --token-file or NATS_TOKEN) or --creds"
                .into());
        }
        let mut options = ConnectOptions::new().name(who).connection_timeout(Duration::from_secs(5));
        let user = match in_url {
            Some(UrlCredentials::User(u, p)) => Some((u, p)),
            Some(UrlCredentials::Token(t)) => {
                options = options.token(t);
                None
            }
            None => self.user.clone(),
        };
        if let Some((user, pass)) = user {
            options = options.user_and_password(user, pass);
        }
        if let Some(token) = &self.token {
            options = options.token(token.clone());
        }
        if let Some(path) = &self.creds {
            options = match read_credentials(path)? {
                Credentials::Decorated => {
                    options.credentials_file(path).await.map_err(|e| format!("--creds {}: {e}", path.display()))?
                }
                Credentials::Seed(seed) => options.nkey(seed),
            };
        }
        if let Some(ca) = &self.tls_ca {
            options = options.add_root_certificates(existing("--tls-ca", ca)?).require_tls(true);
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                options = options
                    .add_client_certificate(existing("--tls-cert", cert)?, existing("--tls-key", key)?)
                    .require_tls(true);
            }
            (None, None) => {}
            _ => return Err("--tls-cert and --tls-key go together: give both or neither".into()),
        }
        if bare.split(',').any(|a| a.trim_start().starts_with("tls://")) {
            options = options.require_tls(true);
        }
        Ok((bare, options))
    }

    /// Connects, failing fast with one line that says why (unreachable, refused credentials,
    /// TLS) and never shows a secret.
    pub async fn connect(&self, who: &str) -> Result<async_nats::Client, String> {
        let (bare, options) = self.options(who).await?;
        let shown = self.shown();
        options.connect(bare.as_str()).await.map_err(|e| {
            let why = e.to_string();
            let tls = e.kind() == ConnectErrorKind::Tls
                || ["certificate", "tls", "TLS", "handshake"].iter().any(|w| why.contains(w));
            match e.kind() {
                ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => format!(
                    "the NATS broker at {shown} refused these credentials ({why}) (hint: check the user and \
                     password, the token or --creds)"
                ),
                _ if tls => format!(
                    "TLS with the NATS broker at {shown} failed: {why} (hint: --tls-ca FILE for a private CA, \
                     --tls-cert/--tls-key where the server verifies clients, tls:// for a TLS-only server)"
                ),
                _ => format!(
                    "cannot reach the NATS broker at {shown}: {why} (hint: start `nats-server -js`, or check --broker)"
                ),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_tokens_in_urls_are_masked() {
        assert_eq!(mask_url("nats://alice:s3cret@host:4222"), "nats://alice:***@host:4222");
        assert_eq!(mask_url("tls://TOKEN@host"), "tls://***@host");
        assert_eq!(mask_url("nats://a:p@h1,nats://h2"), "nats://a:***@h1,nats://h2");
        assert_eq!(mask_url("nats://host:4222"), "nats://host:4222");
        assert_eq!(mask_url("a:p@host"), "a:***@host");
    }

    #[test]
    fn credentials_come_out_of_urls_decoded() {
        let (bare, found) = split_credentials("tls://al%40ce:p%3Ass@h:1,nats://h2");
        assert_eq!(bare, "tls://h:1,nats://h2");
        assert_eq!(found, Some(UrlCredentials::User("al@ce".into(), "p:ss".into())));
        assert_eq!(split_credentials("nats://t0k@h").1, Some(UrlCredentials::Token("t0k".into())));
        assert_eq!(split_credentials("nats://h:4222"), ("nats://h:4222".into(), None));
        assert_eq!(percent_decoded("100%"), "100%");
    }

    #[test]
    fn debug_shows_no_secret() {
        let c = Connection {
            url: "nats://u:pw-in-url@h".into(),
            user: Some(("v".into(), "pw-apart".into())),
            token: Some("tok-apart".into()),
            ..Default::default()
        };
        let shown = format!("{c:?}");
        for secret in ["pw-in-url", "pw-apart", "tok-apart"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    #[test]
    fn credentials_files_are_told_apart_and_others_refused() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("u.creds");
        std::fs::write(&creds, "-----BEGIN NATS USER JWT-----\neyJ0\n------END NATS USER JWT------\n").unwrap();
        assert!(matches!(read_credentials(&creds), Ok(Credentials::Decorated)));
        let seed = dir.path().join("u.nk");
        std::fs::write(&seed, "SUAIBDPBAUTWCWBKIO6XHQNINK5FWJW4OHLXC3HQ2KFE4PEJUA44CNHTC4\n").unwrap();
        assert!(matches!(read_credentials(&seed), Ok(Credentials::Seed(s)) if s.starts_with("SUA")));
        let other = dir.path().join("x.txt");
        std::fs::write(&other, "hello").unwrap();
        let e = read_credentials(&other).err().unwrap();
        assert!(e.starts_with("--creds ") && e.contains("x.txt") && !e.contains('\n'), "{e}");
    }
}
