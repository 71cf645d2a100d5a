//! A real sshd on loopback, used the way the migration tool uses its hosts: commands run
//! as root with `ssh <options> root@host -- <command>`, their status and output read
//! back, a backup stream piped through stdin; only the test's key gets in; and nothing
//! of the server, its sessions or its directory survives the handle.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use testbed::servers::{Host, Server, Sshd};
use testbed::{Error, Netns};

const TIMEOUT: Duration = Duration::from_secs(60);

/// Whether `pid` still runs (a zombie waiting for its reaper counts as gone).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(
            stat.rsplit_once(')').map(|(_, rest)| rest.trim_start()),
            Some(rest) if rest.starts_with('Z') || rest.starts_with('X')
        ),
        Err(_) => false,
    }
}

fn wait_gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Runs `cmd` with `input` on stdin and returns its status and stdout, or panics after
/// [`TIMEOUT`].
fn pipe(mut cmd: Command, input: Vec<u8>) -> (std::process::ExitStatus, Vec<u8>) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // Writing in its own thread: the remote `cat` echoes while we still write.
    std::thread::spawn(move || {
        stdin.write_all(&input).unwrap();
        // Dropping stdin closes it: ssh sends EOF and the remote `cat` ends.
    });
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut out = Vec::new();
        stdout.read_to_end(&mut out).unwrap();
        let _ = tx.send(out);
    });
    let out = rx.recv_timeout(TIMEOUT).unwrap_or_else(|_| {
        let _ = child.kill();
        panic!("ssh did not finish within {TIMEOUT:?}")
    });
    (child.wait().unwrap(), out)
}

#[test]
fn sshd_runs_commands_as_root() {
    let started = Instant::now();
    let sshd = Sshd::start(Host::Loopback).unwrap();
    eprintln!("sshd ready in {:?}", started.elapsed());
    assert_eq!(sshd.destination(), "root@127.0.0.1");
    let options = sshd.client_options();
    assert!(
        options.contains(&sshd.addr().port().to_string()),
        "{options:?}"
    );

    assert_eq!(sshd.run("echo hello; id -u").unwrap(), "hello\n0\n");
    // Quoting is the remote shell's: the command is one string, run by `sh -c`.
    assert_eq!(
        sshd.run("printf '%s|' 'a b' \"$((1+2))\"").unwrap(),
        "a b|3|"
    );

    let err = sshd.run("echo partial; echo oops >&2; exit 3").unwrap_err();
    match &err {
        Error::Command { status, stderr, .. } => {
            assert!(status.contains("exit status: 3"), "{err}");
            assert_eq!(stderr, "oops", "{err}");
        }
        other => panic!("expected a command error, got {other}"),
    }

    // The login shows in the server's log with the key it used.
    let log = std::fs::read_to_string(sshd.log_path()).unwrap();
    assert!(log.contains("Accepted publickey for root"), "{log}");
}

#[test]
fn sshd_forwards_stdin_as_a_clean_8bit_stream() {
    let sshd = Sshd::start(Host::Loopback).unwrap();

    let (status, out) = pipe(sshd.ssh_command("cat"), b"line one\nline two\n".to_vec());
    assert!(status.success(), "{status}");
    assert_eq!(out, b"line one\nline two\n");

    // 1 MiB with every byte value in every position, no line structure: a backup stream.
    let mut data = Vec::with_capacity(1 << 20);
    let mut x: u32 = 0x9e37_79b9;
    while data.len() < 1 << 20 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data[..256].copy_from_slice(&(0..=255u8).collect::<Vec<_>>());
    let started = Instant::now();
    let (status, out) = pipe(sshd.ssh_command("cat"), data.clone());
    eprintln!("1 MiB through ssh and back in {:?}", started.elapsed());
    assert!(status.success(), "{status}");
    assert_eq!(out.len(), data.len());
    assert!(out == data, "the stream came back altered");

    // Into a remote file, as a restore receives it (the remote host is this machine).
    let file = sshd.dir().join("received.bin");
    let (status, out) = pipe(
        sshd.ssh_command(&format!("cat > {} && echo stored", file.display())),
        data.clone(),
    );
    assert!(status.success(), "{status}");
    assert_eq!(out, b"stored\n");
    assert!(
        std::fs::read(&file).unwrap() == data,
        "the stored copy differs"
    );
}

#[test]
fn sshd_refuses_a_client_without_the_key() {
    let sshd = Sshd::start(Host::Loopback).unwrap();
    let mut options = sshd.client_options();
    let key = options.iter().position(|o| o == "-i").unwrap() + 1;
    options[key] = "/dev/null".to_owned();

    let out = sshd
        .command("ssh")
        .args(&options)
        .arg(sshd.destination())
        .args(["--", "echo in"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(stderr.contains("Permission denied (publickey)"), "{stderr}");

    // A refused client changes nothing for the next one.
    assert_eq!(sshd.run("echo still").unwrap(), "still\n");
}

#[test]
fn sshd_leaves_nothing_behind() {
    let sshd = Sshd::start(Host::Loopback).unwrap();
    let (pid, dir) = (sshd.pid(), sshd.dir().to_owned());
    assert!(alive(pid));

    // A session still running when the handle drops: its remote shell prints its pid
    // and becomes a `sleep` that would otherwise outlive the test.
    let mut client = sshd
        .ssh_command("echo $$; exec sleep 600")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(client.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let remote: u32 = line.trim().parse().unwrap();
    assert!(alive(remote));

    drop(sshd);
    let remote_gone = wait_gone(remote);
    if !remote_gone {
        // Not left for 10 minutes if the check below fails.
        let _ = Command::new("kill")
            .args(["-9", &remote.to_string()])
            .status();
    }
    // The client sees its connection cut, it does not hang; if it did, it is killed
    // before the checks so that a failure reports instead of hanging the test.
    let deadline = Instant::now() + Duration::from_secs(10);
    let client_status = loop {
        match client.try_wait().unwrap() {
            Some(status) => break Some(status),
            None if Instant::now() >= deadline => {
                let _ = client.kill();
                let _ = client.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    assert!(!alive(pid), "sshd {pid} still runs");
    assert!(remote_gone, "the remote command {remote} outlived sshd");
    assert!(!Path::new(&dir).exists(), "{} left behind", dir.display());
    let status = client_status.expect("the ssh client still runs after sshd dropped");
    assert!(!status.success(), "{status}");
}

#[test]
fn sshd_runs_inside_a_namespace_on_port_22() {
    let ns = Netns::new("sshd").unwrap();
    let sshd = Sshd::start(Host::Netns(&ns, "127.0.0.1:22".parse().unwrap())).unwrap();
    assert_eq!(sshd.netns(), Some(ns.name()));
    // The remote command runs in the namespace too: its loopback has port 22 listening.
    let listening = sshd.run("cat /proc/net/tcp").unwrap();
    assert!(listening.contains(":0016 00000000:0000 0A"), "{listening}");
}
