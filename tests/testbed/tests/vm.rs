//! Self-tests of the VM harness with real QEMU: a busybox initramfs built here from this
//! machine's busybox-static and kernel modules, booted under the Debian kernel.
//!
//! Every boot costs several seconds under TCG, so each test boots as few VMs as it can
//! and checks many things on them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use imgbuild::build;
use testbed::require;
use testbed::vm::{self, Mac, Nic, VirtualNet, Vm, VmOptions};

const READY: &str = "TB-FIXTURE-READY";
const INDEX_HTML: &str = "hello from the guest\n";
const T: Duration = Duration::from_secs(30);

/// The initramfs the tests boot, and the kernel it matches.
struct Fixture {
    kernel: PathBuf,
    release: String,
    initrd: PathBuf,
}

/// Built once per test process, into cargo's per-target temp dir.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Result<Fixture, String>> = OnceLock::new();
    match FIXTURE.get_or_init(|| build_fixture().map_err(|e| e.to_string())) {
        Ok(f) => f,
        Err(e) => panic!("building the initramfs fixture failed: {e}"),
    }
}

/// `/etc/inittab`: busybox init runs the sysinit script, then keeps a root shell on
/// ttyS1 for the harness's command channel (the contract in `testbed::vm`).
const INITTAB: &str = "\
::sysinit:/etc/init.d/rcS
ttyS1::respawn:/bin/sh
";

/// Mounts the kernel filesystems, loads the NIC drivers, configures the addresses given
/// as `tb.addr=<ifname>,<cidr>` on the kernel command line, and prints the marker; with
/// `tb.panic` on the command line it crashes the kernel instead.
const RCS: &str = r#"#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r module; do
    insmod "/lib/modules/$module" || echo "tb-fixture: insmod $module failed"
done < /etc/modules
ip link set lo up
for arg in $(cat /proc/cmdline); do
    case "$arg" in
    tb.addr=*)
        spec=${arg#tb.addr=}
        dev=${spec%%,*}
        addr=${spec#*,}
        ip link set "$dev" up && ip addr add "$addr" dev "$dev" \
            || echo "tb-fixture: cannot configure $spec"
        ;;
    tb.panic)
        echo "tb-fixture: panicking on purpose" > /dev/console
        echo c > /proc/sysrq-trigger
        ;;
    esac
done
echo "tb-fixture: sysinit done" > /dev/console
echo "TB-FIXTURE-READY" > /dev/console
"#;

fn build_fixture() -> testbed::Result<Fixture> {
    require::root()?;
    let busybox = require::tool("busybox", "busybox-static")?;
    require::tool("cpio", "cpio")?;
    require::tool("gzip", "gzip")?;
    require::tool("modprobe", "kmod")?;
    let bytes = std::fs::read(&busybox).map_err(|e| io("read busybox", e))?;
    if has_interpreter(&bytes) {
        return Err(testbed::Error::Missing {
            need: format!("a static busybox ({} is dynamic)", busybox.display()),
            hint: "install the Debian package `busybox-static`".into(),
        });
    }
    // The kernel the appliance images are built with, found the same way.
    let kernel = build::debian_kernel().map_err(|e| testbed::Error::Missing {
        need: "a Linux kernel in /boot".into(),
        hint: format!("{e:#}"),
    })?;
    let release = build::kernel_release(&kernel).expect("debian_kernel gives vmlinuz-<release>");

    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("vm-fixture");
    let root = out.join("root");
    let _ = std::fs::remove_dir_all(&out);
    for dir in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "etc/init.d",
        "proc",
        "sys",
        "dev",
        "tmp",
        "lib/modules",
        "www",
    ] {
        std::fs::create_dir_all(root.join(dir)).map_err(|e| io(dir, e))?;
    }
    std::fs::write(root.join("bin/busybox"), &bytes).map_err(|e| io("copy busybox", e))?;
    chmod(&root.join("bin/busybox"), 0o755)?;
    let applets = cmd_output(Command::new(&busybox).arg("--list-full"))?;
    for applet in applets.lines().filter(|l| !l.is_empty()) {
        let link = root.join(applet);
        if !link.exists() {
            std::os::unix::fs::symlink("/bin/busybox", &link).map_err(|e| io(applet, e))?;
        }
    }
    // The kernel runs /init from an initramfs; busybox acts as init by that name.
    std::os::unix::fs::symlink("/bin/busybox", root.join("init")).map_err(|e| io("init", e))?;
    // The kernel opens /dev/console for init before anything mounts devtmpfs.
    nix::sys::stat::mknod(
        &root.join("dev/console"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        nix::sys::stat::makedev(5, 1),
    )
    .map_err(|e| io("mknod dev/console", e.into()))?;

    // The NIC drivers and what they depend on, in load order, each once.
    let depends = cmd_output(Command::new("modprobe").args([
        "-S",
        &release,
        "--show-depends",
        "-a",
        "virtio_pci",
        "virtio_net",
    ]))?;
    let mut modules: Vec<String> = Vec::new();
    for line in depends.lines() {
        let Some(path) = line.trim().strip_prefix("insmod ") else {
            continue; // "builtin ..." needs nothing
        };
        let path = Path::new(path.split_whitespace().next().unwrap_or_default());
        let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
            continue;
        };
        assert!(
            file.ends_with(".ko"),
            "{file}: compressed modules are not handled by this fixture"
        );
        if !modules.iter().any(|m| m == file) {
            std::fs::copy(path, root.join("lib/modules").join(file)).map_err(|e| io(file, e))?;
            modules.push(file.to_owned());
        }
    }
    assert!(
        modules.iter().any(|m| m == "virtio_net.ko"),
        "modprobe found no virtio_net for {release}: {depends}"
    );
    let mut list = modules.join("\n");
    list.push('\n');
    std::fs::write(root.join("etc/modules"), list).map_err(|e| io("etc/modules", e))?;
    std::fs::write(root.join("etc/inittab"), INITTAB).map_err(|e| io("inittab", e))?;
    std::fs::write(root.join("etc/init.d/rcS"), RCS).map_err(|e| io("rcS", e))?;
    chmod(&root.join("etc/init.d/rcS"), 0o755)?;
    std::fs::write(root.join("www/index.html"), INDEX_HTML).map_err(|e| io("index", e))?;

    let initrd = out.join("initrd.gz");
    cmd_output(
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "find . | sort | cpio -o -H newc --reproducible --quiet | gzip -n > '{}'",
                initrd.display()
            ))
            .current_dir(&root),
    )?;
    Ok(Fixture {
        kernel,
        release,
        initrd,
    })
}

/// Whether an ELF64 file asks for a dynamic loader (has a PT_INTERP program header):
/// such a busybox would not run in an initramfs without its libraries.
fn has_interpreter(elf: &[u8]) -> bool {
    let u16_at = |at: usize| {
        elf.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        elf.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let (Some(phoff), Some(size), Some(count)) = (u32_at(0x20), u16_at(0x36), u16_at(0x38)) else {
        return true;
    };
    (0..usize::from(count)).any(|i| u32_at(phoff as usize + i * usize::from(size)) == Some(3))
}

fn io(what: &str, source: std::io::Error) -> testbed::Error {
    testbed::Error::Io {
        what: format!("build the initramfs fixture: {what}"),
        source,
    }
}

fn chmod(path: &Path, mode: u32) -> testbed::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| io(&path.display().to_string(), e))
}

fn cmd_output(cmd: &mut Command) -> testbed::Result<String> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| io(&shown, e))?;
    if !out.status.success() {
        return Err(testbed::Error::Command {
            command: shown,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn options(name: &str) -> VmOptions {
    let fx = fixture();
    VmOptions::new(name, &fx.kernel, &fx.initrd, READY)
}

/// An HTTP/1.0 GET of `/` from `addr`, retried while the guest's server comes up (QEMU
/// accepts on the host port at once and closes when the guest refuses).
fn http_get(addr: std::net::SocketAddr) -> String {
    let deadline = Instant::now() + T;
    let mut last = String::new();
    while Instant::now() < deadline {
        let attempt = (|| -> std::io::Result<String> {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            s.write_all(b"GET / HTTP/1.0\r\nHost: guest\r\n\r\n")?;
            let mut reply = String::new();
            s.read_to_string(&mut reply)?;
            Ok(reply)
        })();
        match attempt {
            Ok(reply) if reply.starts_with("HTTP/1.") => return reply,
            Ok(reply) => last = format!("reply {reply:?}"),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("no HTTP answer from {addr}: {last}");
}

#[test]
fn boots_runs_commands_and_forwards_a_port() {
    let fx = fixture();
    let mut vm = Vm::boot(VmOptions {
        nics: vec![Nic::user(&[8080])],
        append: vec![format!("tb.addr=eth0,{}", vm::USER_NET_GUEST_ADDR)],
        ..options("basic")
    })
    .unwrap();
    println!(
        "VM `basic` ({}): boot to ready in {:?}",
        vm.accelerator(),
        vm.boot_to_ready()
    );
    assert!(vm.console().lines().any(|l| l == READY), "{}", vm.console());
    assert!(vm.console().contains("tb-fixture: sysinit done"));
    // Waiting for a line that never comes fails naming it, with the console's tail: the
    // same error `boot` gives when the marker does not come.
    let err = vm
        .wait_for_line("NEVER-PRINTED", Duration::from_millis(500))
        .unwrap_err()
        .to_string();
    assert!(err.contains("`NEVER-PRINTED`"), "{err}");
    assert!(err.contains("within 500ms"), "{err}");
    let tail = err
        .split_once("--- last lines of")
        .map(|(_, t)| t)
        .unwrap_or("");
    assert!(
        tail.contains("tb-fixture: sysinit done\nTB-FIXTURE-READY"),
        "{err}"
    );

    // Results: output, status, the exact text of a multi-line command.
    assert_eq!(vm.run("uname -r", T).unwrap().trimmed(), fx.release);
    let out = vm.run("false", T).unwrap();
    assert_eq!((out.status, out.output.as_str()), (1, ""));
    assert_eq!(vm.run("exit 7", T).unwrap().status, 7);
    let script = "for i in 1 2 3; do\n  echo \"line $i\"\ndone\necho 'it'\\''s  two  spaces'\n\
                  echo to-stderr >&2\nprintf 'no newline'";
    let out = vm.run(script, T).unwrap();
    assert_eq!(
        out.output,
        "line 1\nline 2\nline 3\nit's  two  spaces\nto-stderr\nno newline"
    );
    assert_eq!(out.status, 0);
    // A syntax error is the command's failure, not the channel's.
    let out = vm.run("echo 'unclosed", T).unwrap();
    assert_ne!(out.status, 0, "{out:?}");
    // Each command runs in its own subshell and cannot read the channel's input.
    vm.succeed("cd /tmp; X=1; cat", T).unwrap();
    assert_eq!(vm.run("pwd; echo \"[$X]\"", T).unwrap().output, "/\n[]\n");
    let err = vm.run("echo \u{3}", T).unwrap_err().to_string();
    assert!(err.contains("control character"), "{err}");
    let err = vm.succeed("echo bad; exit 3", T).unwrap_err().to_string();
    assert!(
        err.contains("exit status 3") && err.contains("bad"),
        "{err}"
    );

    // A command that hangs times out, and the channel recovers.
    let err = vm
        .run("echo started; sleep 600", Duration::from_secs(3))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("within 3s") && err.contains("started"),
        "{err}"
    );
    assert_eq!(vm.run("echo after", T).unwrap().output, "after\n");

    // The guest's port 8080 is reachable on the host's loopback, and only there.
    let addr = vm.host_addr(8080).expect("a forward for 8080");
    assert!(addr.ip().is_loopback());
    assert_eq!(vm.host_port(8080), Some(addr.port()));
    vm.succeed("httpd -p 8080 -h /www", T).unwrap();
    let reply = http_get(addr);
    assert!(
        reply.lines().next().is_some_and(|l| l.contains(" 200 ")),
        "{reply}"
    );
    assert!(reply.ends_with(INDEX_HTML), "{reply}");
}

#[test]
fn vms_on_virtual_nets_reach_each_other_and_clean_up() {
    let lan = VirtualNet::new("lan").unwrap();
    lan.add_address("192.0.2.254/24").unwrap();
    let wan = VirtualNet::new("wan").unwrap();
    wan.add_address("198.51.100.254/24").unwrap();
    // `gw` is a router between the two segments; `host` sits on the lan only.
    let mut vms = Vm::boot_all(vec![
        VmOptions {
            nics: vec![Nic::net(&lan), Nic::net(&wan)],
            append: vec![
                "tb.addr=eth0,192.0.2.1/24".into(),
                "tb.addr=eth1,198.51.100.1/24".into(),
            ],
            ..options("gw")
        },
        VmOptions {
            nics: vec![Nic::net(&lan)],
            append: vec!["tb.addr=eth0,192.0.2.2/24".into()],
            ..options("host")
        },
    ])
    .unwrap();
    let host = vms.pop().unwrap();
    let gw = vms.pop().unwrap();
    for vm in [&gw, &host] {
        println!(
            "VM `{}` ({}): boot to ready in {:?}",
            vm.name(),
            vm.accelerator(),
            vm.boot_to_ready()
        );
    }

    // NICs appear in the order given, with the deterministic MACs.
    assert_eq!(gw.nics()[1].mac, Mac::for_vm("gw", 1));
    for (vm, i) in [(&gw, 0), (&gw, 1), (&host, 0)] {
        let mac = vm
            .succeed(&format!("cat /sys/class/net/eth{i}/address"), T)
            .unwrap();
        assert_eq!(
            mac.trim(),
            vm.nics()[i].mac.to_string(),
            "{} eth{i}",
            vm.name()
        );
    }

    // The VMs reach each other, and the segment's namespace reaches both.
    host.succeed("ping -c1 -W2 192.0.2.1", T).unwrap();
    gw.succeed("ping -c1 -W2 192.0.2.2", T).unwrap();
    for addr in ["192.0.2.1", "192.0.2.2"] {
        lan.netns()
            .exec("ping", &["-c1", "-W2", addr])
            .unwrap_or_else(|e| panic!("lan namespace -> {addr}: {e}"));
    }
    // And `gw` routes between the segments: wan namespace -> gw -> host.
    gw.succeed("sysctl -w net.ipv4.ip_forward=1", T).unwrap();
    host.succeed("ip route add 198.51.100.0/24 via 192.0.2.1", T)
        .unwrap();
    wan.netns().route("192.0.2.0/24", "198.51.100.1").unwrap();
    wan.netns()
        .exec("ping", &["-c1", "-W2", "192.0.2.2"])
        .unwrap();

    // Cleanup: QEMU gone, taps gone with it, directories and namespaces removed.
    let tap = host.nics()[0].tap.clone().unwrap();
    assert!(lan.netns().ip(&["link", "show", &tap]).is_ok());
    let remains: Vec<(u32, PathBuf)> = [&gw, &host]
        .iter()
        .map(|vm| (vm.pid(), vm.dir().to_owned()))
        .collect();
    let namespaces = [lan.name().to_owned(), wan.name().to_owned()];
    drop(host);
    assert!(
        lan.netns().ip(&["link", "show", &tap]).is_err(),
        "tap {tap} outlived its VM"
    );
    drop(gw);
    drop((lan, wan));
    for (pid, dir) in &remains {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "QEMU {pid} still runs"
        );
        assert!(!dir.exists(), "{} was not removed", dir.display());
        let dir = dir.to_string_lossy();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            assert!(
                !String::from_utf8_lossy(&cmdline).contains(&*dir),
                "process {:?} still uses {dir}",
                entry.file_name()
            );
        }
    }
    for ns in namespaces {
        assert!(
            !Path::new("/run/netns").join(&ns).exists(),
            "namespace {ns} left behind"
        );
    }
}

#[test]
fn boot_failures_say_why() {
    let fx = fixture();
    // Two guests that never get ready, booted side by side, each on its own thread (the
    // thread that boots a VM owns its QEMU).
    let (no_marker, panicked) = std::thread::scope(|s| {
        let no_marker = s.spawn(|| {
            let started = Instant::now();
            let err = Vm::boot(VmOptions {
                ready_marker: "NEVER-PRINTED".into(),
                boot_timeout: Duration::from_secs(3),
                ..options("nomarker")
            })
            .unwrap_err();
            (started.elapsed(), err.to_string())
        });
        let panicked = s.spawn(|| {
            let started = Instant::now();
            let err = Vm::boot(VmOptions {
                append: vec!["tb.panic".into()],
                ..options("panic")
            })
            .unwrap_err();
            (started.elapsed(), err.to_string())
        });
        (no_marker.join().unwrap(), panicked.join().unwrap())
    });

    // No marker: the error names it, the timeout and the console (what it holds after
    // so short a time depends on the machine's load; see the basic test for its content).
    let (took, err) = no_marker;
    println!("no marker, after {took:?}:\n{err}\n");
    assert!(took < Duration::from_secs(60), "{err}");
    assert!(err.contains("`NEVER-PRINTED`"), "{err}");
    assert!(err.contains("within 3s"), "{err}");
    assert!(err.contains("--- last lines of"), "{err}");

    // A kernel panic fails the boot at once, long before the 120 s timeout.
    let (took, err) = panicked;
    println!("kernel panic, after {took:?}:\n{err}\n");
    assert!(took < Duration::from_secs(90), "{took:?}: {err}");
    assert!(err.contains("panicked"), "{err}");
    assert!(err.contains("tb-fixture: panicking on purpose"), "{err}");
    assert!(err.contains("Kernel panic"), "{err}");

    // QEMU refusing to start (here: a kernel that is not one) fails at once with its
    // own message.
    let started = Instant::now();
    let err = Vm::boot(VmOptions::new("badkernel", &fx.initrd, &fx.initrd, READY))
        .unwrap_err()
        .to_string();
    assert!(started.elapsed() < Duration::from_secs(20), "{err}");
    assert!(err.contains("QEMU exited"), "{err}");
    let said = err.split_once("QEMU said: ").map(|(_, s)| s).unwrap_or("");
    assert!(!said.trim().is_empty(), "QEMU's message missing: {err}");
}
