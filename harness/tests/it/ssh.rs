//! The ssh runtime against three "hosts" made on this machine: network
//! namespaces `ordeal-<tag>-h1..3`, each running Debian's `sshd` (key-only
//! auth, a generated host key, config `ordeal-sshd-hN.conf`), joined by a
//! bridge inside a fourth namespace `ordeal-<tag>-sw` (so that the root
//! namespace's firewall never sees their traffic) and reached from here over
//! one veth `ordeal-<tag>-r`. Only the addresses of a test-private subnet on
//! interfaces this test made are ever targeted. Needs root, `ip`, `sshd`,
//! `ssh-keygen` and `nft`; skips loudly without them unless
//! `ORDEAL_REQUIRE_SSH=1`.

use super::{clock_check, node_binary, partition_evidence, run, HARNESS};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Hosts in the lab.
const HOSTS: usize = 3;

/// Runs a command; its stdout, or an error with its stderr.
fn sh(program: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The namespaces, sshd processes and files of the test.
struct Lab {
    tag: String,
    /// The first three octets of the subnet, e.g. `10.213.117`.
    subnet: String,
    dir: tempfile::TempDir,
    namespaces: Vec<String>,
    sshd: Vec<Child>,
}

impl Lab {
    fn namespace(&self, host: usize) -> String {
        format!("ordeal-{}-h{host}", self.tag)
    }
    fn address(&self, host: usize) -> String {
        format!("{}.{}", self.subnet, 10 + host)
    }
    fn host_dir(&self, host: usize) -> PathBuf {
        self.dir.path().join(format!("h{host}"))
    }
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    /// The harness flags that run on the lab's hosts.
    fn flags(&self) -> Vec<String> {
        let (hosts, known) = (self.path("hosts"), self.path("known_hosts"));
        [
            "--runtime",
            "ssh",
            "--hosts-file",
            &hosts,
            "--ssh-known-hosts",
            &known,
        ]
        .map(String::from)
        .to_vec()
    }

    fn create() -> Result<Lab, String> {
        if sh("id", &["-u"])?.trim() != "0" {
            return Err("namespaces need root".into());
        }
        for tool in ["/usr/sbin/sshd", "/usr/bin/ssh-keygen", "/usr/sbin/nft"] {
            if !Path::new(tool).is_file() {
                return Err(format!(
                    "{tool} is missing (apt-get install openssh-server openssh-client nftables)"
                ));
            }
        }
        let pid = std::process::id();
        let taken = sh("ip", &["-o", "addr"])?;
        let octet = (0..100)
            .map(|k| 100 + (pid as usize + k) % 150)
            .find(|o| !taken.contains(&format!("10.213.{o}.")))
            .ok_or("no free 10.213.x.0/24 subnet")?;
        let mut lab = Lab {
            tag: format!("{:04x}", pid & 0xffff),
            subnet: format!("10.213.{octet}"),
            dir: tempfile::Builder::new()
                .prefix("ordeal-ssh-")
                .tempdir()
                .map_err(|e| e.to_string())?,
            namespaces: Vec::new(),
            sshd: Vec::new(),
        };
        lab.network()?;
        lab.keys()?;
        for host in 1..=HOSTS {
            lab.start_sshd(host)?;
        }
        lab.wait_for_sshd()?;
        Ok(lab)
    }

    /// The switch namespace with its bridge, the root's veth, and one
    /// namespace per host on the bridge.
    fn network(&mut self) -> Result<(), String> {
        let switch = format!("ordeal-{}-sw", self.tag);
        sh("ip", &["netns", "add", &switch])?;
        self.namespaces.push(switch.clone());
        sh(
            "ip",
            &["-n", &switch, "link", "add", "br0", "type", "bridge"],
        )?;
        sh("ip", &["-n", &switch, "link", "set", "br0", "up"])?;
        let root_end = format!("ordeal-{}-r", self.tag);
        sh(
            "ip",
            &[
                "link", "add", &root_end, "type", "veth", "peer", "name", "up0", "netns", &switch,
            ],
        )?;
        sh(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}.1/24", self.subnet),
                "dev",
                &root_end,
            ],
        )?;
        sh("ip", &["link", "set", &root_end, "up"])?;
        sh(
            "ip",
            &["-n", &switch, "link", "set", "up0", "master", "br0", "up"],
        )?;
        for host in 1..=HOSTS {
            let ns = self.namespace(host);
            sh("ip", &["netns", "add", &ns])?;
            self.namespaces.push(ns.clone());
            let port = format!("p{host}");
            sh(
                "ip",
                &[
                    "-n", &switch, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                    "netns", &ns,
                ],
            )?;
            sh(
                "ip",
                &["-n", &switch, "link", "set", &port, "master", "br0", "up"],
            )?;
            let address = format!("{}/24", self.address(host));
            sh("ip", &["-n", &ns, "addr", "add", &address, "dev", "eth0"])?;
            sh("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
            sh("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// The user key, one host key per host, and the files naming them.
    fn keys(&self) -> Result<(), String> {
        let keygen = |name: &str| {
            sh(
                "ssh-keygen",
                &[
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "ordeal-test",
                    "-f",
                    &self.path(name),
                ],
            )
        };
        keygen("user")?;
        std::fs::copy(self.path("user.pub"), self.path("authorized_keys"))
            .map_err(|e| e.to_string())?;
        let mut known = String::new();
        let mut hosts = String::new();
        for host in 1..=HOSTS {
            keygen(&format!("host{host}"))?;
            let public = std::fs::read_to_string(self.path(&format!("host{host}.pub")))
                .map_err(|e| e.to_string())?;
            known.push_str(&format!("{} {}", self.address(host), public));
            std::fs::create_dir(self.host_dir(host)).map_err(|e| e.to_string())?;
            hosts.push_str(&format!(
                "{} user=root key={} dir={}\n",
                self.address(host),
                self.path("user"),
                self.host_dir(host).display()
            ));
        }
        std::fs::write(self.path("known_hosts"), known).map_err(|e| e.to_string())?;
        std::fs::write(self.path("hosts"), hosts).map_err(|e| e.to_string())
    }

    fn start_sshd(&mut self, host: usize) -> Result<(), String> {
        std::fs::create_dir_all("/run/sshd").map_err(|e| e.to_string())?;
        let config = self.path(&format!("ordeal-sshd-h{host}.conf"));
        let text = format!(
            "ListenAddress {}\nHostKey {}\nAuthorizedKeysFile {}\nPubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\nMaxSessions 50\nMaxStartups 50\nPidFile {}\n",
            self.address(host),
            self.path(&format!("host{host}")),
            self.path("authorized_keys"),
            self.path(&format!("sshd-h{host}.pid")),
        );
        std::fs::write(&config, text).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(self.path(&format!("sshd-h{host}.log")))
            .map_err(|e| e.to_string())?;
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.namespace(host),
                "/usr/sbin/sshd",
                "-D",
                "-e",
                "-f",
                &config,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting sshd: {e}"))?;
        self.sshd.push(child);
        Ok(())
    }

    fn wait_for_sshd(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        for host in 1..=HOSTS {
            let address = format!("{}:22", self.address(host));
            while std::net::TcpStream::connect_timeout(
                &address.parse().unwrap(),
                Duration::from_millis(300),
            )
            .is_err()
            {
                if Instant::now() > deadline {
                    return Err(format!("sshd on {address} does not answer"));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }

    /// Leftovers of ours on the hosts: run directories, nft tables, and
    /// processes naming a host directory or the lab's subnet (nodes, ssh
    /// masters).
    fn leftovers(&self) -> Vec<String> {
        let mut found = Vec::new();
        for host in 1..=HOSTS {
            for entry in std::fs::read_dir(self.host_dir(host)).unwrap() {
                found.push(format!("directory {}", entry.unwrap().path().display()));
            }
            let tables = sh(
                "ip",
                &[
                    "netns",
                    "exec",
                    &self.namespace(host),
                    "nft",
                    "list",
                    "tables",
                ],
            )
            .unwrap();
            found.extend(
                tables
                    .lines()
                    .filter(|l| l.contains("ordeal"))
                    .map(|l| format!("h{host}: {l}")),
            );
        }
        let markers = [
            self.dir.path().join("h").to_string_lossy().into_owned(),
            format!("{}.", self.subnet),
        ];
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if markers.iter().any(|m| cmdline.contains(m.as_str())) {
                found.push(format!(
                    "process {}: {cmdline}",
                    entry.file_name().to_string_lossy()
                ));
            }
        }
        found
    }

    /// Stops sshd, deletes the root's veth and the namespaces (which take
    /// their veths with them; the kernel finishes that in the background,
    /// so this waits a little); returns what is still there.
    fn destroy(&mut self) -> Vec<String> {
        for child in &mut self.sshd {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.sshd.clear();
        let root_end = format!("ordeal-{}-r", self.tag);
        if sh("ip", &["link", "show", &root_end]).is_ok() {
            let _ = sh("ip", &["link", "delete", &root_end]);
        }
        for ns in std::mem::take(&mut self.namespaces) {
            let _ = sh("ip", &["netns", "delete", &ns]);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = self.remains();
            if left.is_empty() || Instant::now() > deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Namespaces, links and sshd processes of the lab that still exist.
    fn remains(&self) -> Vec<String> {
        let marker = format!("ordeal-{}-", self.tag);
        let mut left: Vec<String> = sh("ip", &["netns", "list"])
            .unwrap_or_default()
            .lines()
            .chain(sh("ip", &["-o", "link"]).unwrap_or_default().lines())
            .filter(|l| l.contains(&marker))
            .map(str::to_string)
            .collect();
        let config = self.dir.path().to_string_lossy().into_owned();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&config) {
                left.push(format!("process {}", entry.file_name().to_string_lossy()));
            }
        }
        left
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.destroy();
    }
}

/// The lab, or `None` (after saying so) where namespaces cannot be made;
/// with `ORDEAL_REQUIRE_SSH=1` that fails the test instead.
fn lab_or_skip(test: &str) -> Option<Lab> {
    match Lab::create() {
        Ok(lab) => Some(lab),
        Err(why) if std::env::var("ORDEAL_REQUIRE_SSH").as_deref() == Ok("1") => {
            panic!("{test}: ORDEAL_REQUIRE_SSH=1 but the ssh lab cannot be made: {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED {test}: the ssh lab cannot be made here ({why}); set ORDEAL_REQUIRE_SSH=1 to make this a failure");
            None
        }
    }
}

/// The text without ANSI colour sequences (`ESC [ … m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            out.push(c);
        }
    }
    out
}

/// Waits until the hosts hold nothing of ours, or returns what is left.
fn settle(lab: &Lab, wait: Duration) -> Vec<String> {
    let deadline = Instant::now() + wait;
    loop {
        let left = lab.leftovers();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn ssh_runtime_in_namespaces_is_valid_under_partition_and_kill_and_leaves_nothing() {
    let test = "ssh_runtime_in_namespaces_is_valid_under_partition_and_kill_and_leaves_nothing";
    let Some(mut lab) = lab_or_skip(test) else {
        return;
    };
    let flags = lab.flags();
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend([
        "--workload",
        "ordering",
        "--nemesis",
        "partition,kill",
        "--seed",
        "23",
        "--time-limit-s",
        "24",
        "--nemesis-interval-s",
        "3",
    ]);
    let r = run(&args);
    assert_eq!(r.code(), 0, "{}", r.explain());
    println!("{}", String::from_utf8_lossy(&r.output.stdout));
    // Partitions dropped real packets: the kernel's counters on our rules.
    let stderr = strip_ansi(&String::from_utf8_lossy(&r.output.stderr));
    let dropped: u64 = stderr
        .split("dropped_packets=")
        .skip(1)
        .filter_map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert!(
        !r.nemesis("partition", "start").is_empty(),
        "{}",
        r.explain()
    );
    assert!(
        dropped > 0,
        "no packet dropped by the partition rules:\n{}",
        r.explain()
    );
    assert!(
        partition_evidence(&r) > 0,
        "no op to a cut-off node failed:\n{}",
        r.explain()
    );
    println!("partition rules dropped {dropped} packets");
    // Kills and restarts over ssh: each kill shows as a restart.
    let kills = r.nemesis("kill", "start").len() as u64;
    let restarts = r.restarts();
    assert!(
        kills > 0 && restarts >= kills,
        "{restarts} restarts for {kills} kills:\n{}",
        r.explain()
    );
    assert_eq!(r.json("results.json")["valid"], true);
    let log = std::fs::read_to_string(r.dir.join("nodes/n1/node.log")).unwrap();
    assert!(!log.is_empty(), "the node log came back from the host");
    let left = settle(&lab, Duration::from_secs(10));
    assert!(
        left.is_empty(),
        "left on the hosts after the run: {left:#?}"
    );
    println!(
        "cleanup check: no run directory, nft table, node or ssh master left on {HOSTS} hosts"
    );

    // Clocks over ssh: libfaketime on the hosts, each node reports the
    // offset injected into it.
    clock_check(&flags.iter().map(String::as_str).collect::<Vec<_>>());
    println!("clock faults over ssh: every node reported its injected offset");
    untrusted_or_missing_hosts_are_named(&lab);
    interrupted_harness_leaves_nothing(&lab);
    killed_harness_leaves_nothing_after_clean(&lab);

    let left = lab.destroy();
    assert!(left.is_empty(), "left after the lab: {left:#?}");
    println!("cleanup check: namespaces, veths and sshd removed");
}

/// Starts a long partitioning run on the lab and returns once a partition
/// table exists on some host.
fn start_partitioning(lab: &Lab, store: &Path) -> Child {
    let harness = Command::new(HARNESS)
        .args(lab.flags())
        .args(["--nemesis", "partition", "--nemesis-interval-s", "1"])
        .args(["--swarm", "off"])
        .args(["--time-limit-s", "60", "--rate", "50", "--store"])
        .arg(store)
        .arg("--node-binary")
        .arg(node_binary())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !lab
        .leftovers()
        .iter()
        .any(|l| l.contains("table inet ordeal_"))
    {
        assert!(Instant::now() < deadline, "the run never partitioned");
        std::thread::sleep(Duration::from_millis(200));
    }
    harness
}

/// Ctrl-C (SIGINT to the harness): it tears the cluster down itself.
fn interrupted_harness_leaves_nothing(lab: &Lab) {
    let store = tempfile::tempdir().unwrap();
    let mut harness = start_partitioning(lab, store.path());
    let pid = harness.id().to_string();
    sh("kill", &["-INT", &pid]).unwrap();
    let status = harness.wait().unwrap();
    assert_eq!(status.code(), Some(130), "an interrupted harness exits 130");
    let left = settle(lab, Duration::from_secs(10));
    assert!(left.is_empty(), "left after Ctrl-C: {left:#?}");
    println!("cleanup check: Ctrl-C left nothing on the hosts");
}

/// A SIGKILLed harness: its nodes die with their ssh channels, and
/// `harness clean --hosts-file` removes the directories and nft tables.
fn killed_harness_leaves_nothing_after_clean(lab: &Lab) {
    let store = tempfile::tempdir().unwrap();
    let (hosts, known) = (lab.path("hosts"), lab.path("known_hosts"));
    let mut harness = start_partitioning(lab, store.path());
    harness.kill().unwrap();
    harness.wait().unwrap();
    let output = Command::new(HARNESS)
        .args(["clean", "--hosts-file", &hosts, "--ssh-known-hosts", &known])
        .arg("--store")
        .arg(store.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "clean failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("nft table ordeal_") && stdout.contains("directory ordeal-"),
        "{stdout}"
    );
    // A killed harness's ssh master outlives its last session by 30 s
    // (ssh.rs: MASTER_IDLE_S), then exits.
    let left = settle(lab, Duration::from_secs(45));
    assert!(
        left.is_empty(),
        "left after a killed harness and clean: {left:#?}"
    );
    println!(
        "cleanup check: a SIGKILLed harness's nodes died; clean removed {}",
        stdout.lines().last().unwrap_or("")
    );
}

/// Host keys are checked: an unknown key, or no host at the address, is
/// an error naming the host, and nothing starts.
fn untrusted_or_missing_hosts_are_named(lab: &Lab) {
    let empty = lab.path("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let store = tempfile::tempdir().unwrap();
    let missing = format!("{}.99", lab.subnet);
    for (hosts, known, expected) in [
        (lab.path("hosts"), empty.as_str(), lab.address(1)),
        (
            format!("{missing},{missing},{missing}"),
            lab.path("known_hosts").as_str(),
            missing.clone(),
        ),
    ] {
        let flag = if hosts.contains(',') {
            "--hosts"
        } else {
            "--hosts-file"
        };
        let output = Command::new(HARNESS)
            .args(["--runtime", "ssh", flag, &hosts, "--ssh-known-hosts", known])
            .args(["--time-limit-s", "5", "--store"])
            .arg(store.path())
            .arg("--node-binary")
            .arg(node_binary())
            .output()
            .unwrap();
        let stderr = strip_ansi(&String::from_utf8_lossy(&output.stderr));
        assert_eq!(output.status.code(), Some(3), "{stderr}");
        assert!(stderr.contains(&format!("host {expected}")), "{stderr}");
    }
    let left = settle(lab, Duration::from_secs(5));
    assert!(left.is_empty(), "left after refused hosts: {left:#?}");
    println!("host keys checked: an unknown key and a missing host are refused by name");
}
