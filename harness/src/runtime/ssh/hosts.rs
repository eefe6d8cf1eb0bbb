//! The hosts of the `ssh` runtime as the user names them: `--hosts a,b,c`,
//! or a hosts file, one host a line:
//!
//! ```text
//! # destination  [user=U] [port=P] [key=PATH] [dir=REMOTE_DIR]
//! 10.0.0.11 user=root key=/home/me/.ssh/ordeal
//! db2 port=2222
//! ```
//!
//! A bad line is refused naming the file, the line and the field.

use anyhow::{bail, Context};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Lines a hosts file may have at most.
const HOSTS_FILE_LINES_MAX: usize = 1000;
/// Where a host keeps its run directories unless its line says otherwise.
pub const DEFAULT_REMOTE_DIR: &str = "/tmp";

/// One host as the user named it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostSpec {
    /// What `ssh` is given: a name, an address or a `~/.ssh/config` alias,
    /// optionally `user@…`.
    pub destination: String,
    /// Login user (else ssh's default).
    pub user: Option<String>,
    /// SSH port (else ssh's default).
    pub port: Option<u16>,
    /// Private key, the only one offered when given.
    pub key: Option<PathBuf>,
    /// Directory on the host under which run directories are made.
    pub dir: String,
}

impl HostSpec {
    /// A host with ssh's defaults.
    pub fn new(destination: &str) -> HostSpec {
        HostSpec {
            destination: destination.to_string(),
            user: None,
            port: None,
            key: None,
            dir: DEFAULT_REMOTE_DIR.to_string(),
        }
    }
}

/// Parses `--hosts a,b,c`.
pub fn parse_hosts_list(text: &str) -> anyhow::Result<Vec<HostSpec>> {
    let hosts: Vec<HostSpec> = text
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(HostSpec::new)
        .collect();
    if hosts.is_empty() {
        bail!("--hosts: no host named (expected HOST[,HOST…])");
    }
    if let Some(bad) = hosts.iter().find(|h| !plain_word(&h.destination)) {
        bail!("--hosts: `{}` is not a host name", bad.destination);
    }
    Ok(hosts)
}

/// Whether a destination or value holds no whitespace, quote or option
/// lead that could change ssh's command line.
fn plain_word(word: &str) -> bool {
    !word.is_empty()
        && !word.starts_with('-')
        && word
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '\'' && c != '"')
}

/// Reads a hosts file (format in the module doc); errors name file and line.
pub fn read_hosts_file(path: &Path) -> anyhow::Result<Vec<HostSpec>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--hosts-file: reading {}", path.display()))?;
    let mut hosts = Vec::new();
    for (number, line) in (1..).zip(text.lines()) {
        if number > HOSTS_FILE_LINES_MAX {
            bail!("{}: more than {HOSTS_FILE_LINES_MAX} lines", path.display());
        }
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let host =
            parse_host_line(line).with_context(|| format!("{} line {number}", path.display()))?;
        hosts.push(host);
    }
    if hosts.is_empty() {
        bail!("{}: no host listed", path.display());
    }
    Ok(hosts)
}

fn parse_host_line(line: &str) -> anyhow::Result<HostSpec> {
    let mut words = line.split_whitespace();
    let destination = words.next().context("no destination")?;
    if !plain_word(destination) {
        bail!("`{destination}` is not a host name");
    }
    let mut host = HostSpec::new(destination);
    for word in words {
        let Some((field, value)) = word.split_once('=') else {
            bail!("`{word}` is not FIELD=VALUE (fields: user, port, key, dir)");
        };
        if !plain_word(value) {
            bail!("field `{field}`: `{value}` is empty or not a plain word");
        }
        match field {
            "user" => host.user = Some(value.to_string()),
            "port" => {
                let port = value
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .with_context(|| format!("field `port`: `{value}` is not a port"))?;
                host.port = Some(port);
            }
            "key" => host.key = Some(PathBuf::from(value)),
            "dir" if value.starts_with('/') => host.dir = value.trim_end_matches('/').to_string(),
            "dir" => bail!("field `dir`: `{value}` is not an absolute path"),
            other => bail!("unknown field `{other}` (fields: user, port, key, dir)"),
        }
    }
    Ok(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_hosts_files_parse_and_bad_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        std::fs::write(
            &path,
            "# three hosts\n10.0.0.1 user=root port=2222 key=/k dir=/var/tmp/\n\ndb2 # alias\n",
        )
        .unwrap();
        let hosts = read_hosts_file(&path).unwrap();
        assert_eq!(hosts.len(), 2);
        assert_eq!(hosts[0].user.as_deref(), Some("root"));
        assert_eq!(hosts[0].port, Some(2222));
        assert_eq!(hosts[0].key.as_deref(), Some(Path::new("/k")));
        assert_eq!(hosts[0].dir, "/var/tmp");
        assert_eq!(hosts[1], HostSpec::new("db2"));
        for (text, expected) in [
            ("a port=0\n", "line 1"),
            ("a\nb colour=red\n", "unknown field `colour`"),
            ("a dir=tmp\n", "not an absolute path"),
            ("a user\n", "not FIELD=VALUE"),
            ("-oProxyCommand=x\n", "not a host name"),
            ("# nothing\n", "no host listed"),
        ] {
            std::fs::write(&path, text).unwrap();
            let error = format!("{:#}", read_hosts_file(&path).unwrap_err());
            assert!(error.contains(expected), "{text:?}: {error}");
        }
        assert_eq!(parse_hosts_list(" a, b ,").unwrap().len(), 2);
        assert!(parse_hosts_list(",").is_err());
        assert!(parse_hosts_list("a,-x").is_err());
    }
}
