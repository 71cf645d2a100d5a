//! Virtual machines booted with QEMU, for tests that need a whole guest: an appliance
//! image with its own kernel, kernel modules, sysctls and init, or several such hosts on a
//! private L2 segment.
//!
//! [`Vm::boot`] starts `qemu-system-x86_64` with a kernel and an initramfs (direct kernel
//! boot: no disk, no boot loader), or from a disk image ([`VmOptions::disk`]), in a
//! private directory (`/tmp/tb-vm-<name>-XXXXXX`) and
//! waits until the guest prints its *ready marker* on the serial console. The test then
//! drives the guest through a root shell on a second serial port ([`Vm::run`]) and reaches
//! its services over the network ([`Nic`]). Dropping the [`Vm`] kills QEMU (also when the
//! test panics; the console tail is printed then) and removes the directory.
//!
//! # What the harness gives the guest
//!
//! * Kernel command line: `console=ttyS0 panic=-1 net.ifnames=0`, then `quiet` unless
//!   [`VmOptions::quiet`] is off, then [`VmOptions::append`] in order. `panic=-1` with
//!   QEMU's `-no-reboot` turns a guest kernel panic into a QEMU exit, which `boot`
//!   reports at once instead of waiting for its timeout.
//! * ttyS0 (I/O port 0x3f8): the console, written to `console.log` in the VM directory
//!   ([`Vm::console`]).
//! * ttyS1 (I/O port 0x2f8): the command channel, a unix socket `cmd.sock` in the VM
//!   directory that [`Vm::run`] connects to.
//! * One `virtio-net-pci` device per entry of [`VmOptions::nics`], in that order, at PCI
//!   slots 0x08, 0x09, ...; with kernel names (`net.ifnames=0`, no udev renaming) the
//!   guest sees them as `eth0`, `eth1`, ... in the order of `nics`. MAC addresses are
//!   [`Mac::for_vm`]`(name, index)` unless given, so they are the same on every run.
//! * Nothing else: no disk (unless [`VmOptions::disk`], below), no display, no default
//!   devices (`-nodefaults`).
//!
//! # What the guest image must provide (the contract)
//!
//! 1. A kernel with the 8250 serial driver built in (Debian's is), and in the initramfs
//!    the modules for the NICs if they are modules: on Debian 6.1 that is
//!    `virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover
//!    net_failover virtio_net` in this order (`modprobe -S <release> --show-depends -a
//!    virtio_pci virtio_net`; `imgbuild::build::kernel_release` gives `<release>`).
//! 2. When it is ready, a line that is exactly [`VmOptions::ready_marker`] on the console
//!    (`/dev/console`, i.e. ttyS0). Surrounding blanks and terminal escapes are ignored.
//! 3. A root shell on ttyS1 with ttyS1 as its stdin, stdout and stderr, restarted when it
//!    exits. With busybox init, this `/etc/inittab` line (init opens `/dev/ttyS1` for it,
//!    makes it the controlling terminal, and respawns the shell):
//!
//!    ```text
//!    ttyS1::respawn:/bin/sh
//!    ```
//!
//!    With systemd, a unit with `ExecStart=/bin/sh`, `StandardInput=tty-force`,
//!    `StandardOutput=tty`, `StandardError=tty`, `TTYPath=/dev/ttyS1`, `Restart=always`.
//!    The shell must be a POSIX `sh` (busybox ash, dash, bash); `stty` should be there
//!    (see below), nothing else is needed. The shell may be interactive and print
//!    prompts; it need not be up yet when the marker is printed.
//! 4. On a [`Nic::User`] interface, the address 10.0.2.15/24 ([`USER_NET_GUEST_ADDR`];
//!    the gateway is 10.0.2.2, or run a DHCP client): QEMU forwards host ports to that
//!    address.
//!
//! # Booting from a disk
//!
//! With [`VmOptions::disk`] set, the VM boots that disk image through the firmware
//! (SeaBIOS, then the disk's own boot loader) instead of a kernel and an initramfs;
//! `kernel` and `initrd` are then not used. Such a disk is, for example, an appliance's
//! A/B image (`imgbuild`'s `disk.img`), whose slots the guest rewrites and reboots into.
//! So, in this mode:
//!
//! * The VM writes to its own copy: a qcow2 overlay `disk.qcow2` in the VM directory
//!   (`qemu-img create -b`; the image itself is never written). Raw images and qcow2
//!   images (by the `.qcow2` extension) can be given.
//! * The disk is a `virtio-blk-pci` device at PCI slot 0x06 ([`DISK_SLOT`]), first in the
//!   boot order: the guest needs `virtio_pci` and `virtio_blk` and sees it as `/dev/vda`
//!   (a test's extra disks go at other slots, through [`VmOptions::qemu_args`]).
//! * The kernel command line is the boot loader's. The harness's own parameters
//!   ([`VmOptions::append`]; `console=`, `panic=` and `quiet` are the boot loader's
//!   business) reach the guest as the QEMU firmware config file `opt/appliance/cmdline`
//!   ([`FW_CFG_CMDLINE`]): one line, the words separated by blanks, which the guest
//!   reads from `/sys/firmware/qemu_fw_cfg/by_name/opt/appliance/cmdline/raw` (module
//!   `qemu_fw_cfg`). The appliance images read it as if it were on the command line.
//! * No `-no-reboot`: a guest reboot restarts the machine in the same QEMU, with the same
//!   overlay, console log and command socket. [`Vm::console_mark`] and
//!   [`Vm::wait_ready_since`] wait for the next boot's ready marker; the command channel
//!   then re-syncs with the new shell. A kernel panic still fails a wait at once (the
//!   panic line on the console), though QEMU goes on to reboot the guest.
//!
//! # The command channel
//!
//! [`Vm::run`] types one line per command into the shell on ttyS1:
//!
//! ```text
//! echo TB''S<tag>; ( eval '<command>' ) </dev/null 2>&1; echo "TB""E<tag> $?"
//! ```
//!
//! and returns what was printed between the start marker `TBS<tag>` and the end marker
//! `TBE<tag> <status>`. The quotes make the *printed* markers differ from the *typed* text,
//! so neither the terminal's echo nor a shell prompt can be taken for them, and the fresh
//! tag of each command skips anything left over from an earlier one. The command runs in
//! a subshell (`cd`, variables and `exit N` stay in it: `exit 7` gives status 7), with
//! stdin from `/dev/null` (it cannot swallow the next command) and stderr merged into
//! stdout. Before the first command, and again after a command timed out, the harness
//! sends `stty -echo; echo TB''Y<nonce>` until the shell answers: this waits for the shell
//! to come up (bytes sent before it opened the port may be lost) and turns the echo off,
//! which also keeps busybox's line editor out of the way. A command that times out gets a
//! Ctrl-C.
//!
//! The terminal sets limits on what a command may contain: no control characters other
//! than newline and tab (Ctrl-C would interrupt, DEL would erase), and no line longer
//! than [`MAX_COMMAND_LINE`] bytes after quoting (the terminal's line buffer holds 4095).
//! Put bulk data into the image instead. A background process started by a command should
//! send its output elsewhere (`>/dev/null 2>&1 &`), or it may show up in a later
//! command's output.
//!
//! # Networks
//!
//! * [`Nic::User`]: QEMU's user-mode network (slirp) with `restrict=on`, so the guest
//!   reaches nothing outside; the only way in is a host forward bound to 127.0.0.1 (a
//!   free port unless one is given), so a test reaches a guest's port on loopback
//!   ([`Vm::host_addr`]).
//! * [`Nic::Net`]: a port on a [`VirtualNet`], a private L2 segment: a [`Netns`] holding
//!   a Linux bridge `br0`. Each VM NIC on it is a tap device created *inside that
//!   namespace* and attached to the bridge; QEMU receives the open tap file descriptor
//!   (`-netdev tap,fd=N`) instead of the device name. That is why QEMU itself runs in
//!   the test's own namespace rather than under `ip netns exec`: a VM can have NICs on
//!   several segments, each in its own namespace (a gateway between two nets), and user
//!   networking forwards to the loopback the test uses, all at once. The bridge can get
//!   addresses ([`VirtualNet::add_address`]) so test code can reach the VMs from the
//!   namespace ([`Netns::exec`]). The taps vanish with QEMU; the namespace is deleted when
//!   the last handle (the [`VirtualNet`] and the VMs on it) drops.
//!
//! # Environment
//!
//! * `KEEP_VM=1`: keep each VM's directory (console log, QEMU log, socket) after the
//!   test; its path is printed. QEMU is killed all the same.
//! * `VM_ACCEL=kvm|tcg|auto` (default `auto`): `auto` uses KVM, falling back to TCG,
//!   when `/dev/kvm` opens and the CPU advertises `vmx` or `svm`, and TCG (software
//!   emulation, slower, always works) otherwise. The check on the CPU flags matters in
//!   nested setups that expose a `/dev/kvm` whose guests never run: there QEMU's own
//!   `kvm:tcg` fallback picks KVM, and the guest hangs after the boot loader.
//!
//! Like every [`Process`], QEMU gets SIGKILL when the thread that booted it exits: boot a
//! VM on the thread that uses it ([`Vm::boot_all`] boots several at once).

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::error::{Error, IoContext, Result};
use crate::netns::Netns;
use crate::ports::free_port;
use crate::process::Process;
use crate::require;

const QEMU: &str = "qemu-system-x86_64";

/// How long [`Vm::boot`] waits for the ready marker unless told otherwise: generous,
/// because under TCG a plain busybox initramfs already takes about 10 s and a CI machine
/// may boot several VMs on two cores.
pub const DEFAULT_BOOT_TIMEOUT: Duration = Duration::from_secs(120);

/// The guest's address on a [`Nic::User`] network, where QEMU's host forwards point.
pub const USER_NET_GUEST_ADDR: &str = "10.0.2.15/24";

/// The longest line (in bytes, after quoting) [`Vm::run`] sends: the guest terminal's
/// line buffer holds 4095 bytes and drops the rest.
pub const MAX_COMMAND_LINE: usize = 4000;

/// A kernel panic, on the console: no marker will come after it.
const PANIC_LINE: &str = "Kernel panic - not syncing";

/// PCI slot of the boot disk in disk mode ([`VmOptions::disk`]).
pub const DISK_SLOT: usize = 0x06;

/// The QEMU firmware config file that carries [`VmOptions::append`] in disk mode.
pub const FW_CFG_CMDLINE: &str = "opt/appliance/cmdline";

/// PCI slot of the first NIC; later ones follow. Fixed slots fix the guest's enumeration
/// order whatever else is on the command line.
const FIRST_NIC_SLOT: usize = 0x08;

/// The longest marker tag: an 8-digit hex nonce, `x`, a u64 sequence number.
const MAX_TAG: usize = 8 + 1 + 20;

/// How often the channel re-sends its probe while waiting for the guest shell.
const SYNC_PROBE_EVERY: Duration = Duration::from_millis(500);

/// What to boot and how to wire it.
#[derive(Clone, Debug)]
pub struct VmOptions {
    /// Shows in the directory name, in errors, and seeds the MAC addresses: give the VMs
    /// of one test distinct names.
    pub name: String,
    /// A bzImage, e.g. `imgbuild::build::debian_kernel()`.
    pub kernel: PathBuf,
    /// The initramfs (any format the kernel unpacks, e.g. gzip'd newc cpio).
    pub initrd: PathBuf,
    /// The exact line the guest prints on its console once it is ready.
    pub ready_marker: String,
    /// Guest memory in MiB (default 256).
    pub memory_mib: u32,
    /// Virtual CPUs (default 1; under TCG each is a host thread).
    pub cpus: u32,
    /// Adds `quiet` to the kernel command line (default on): less console output, so a
    /// failure's console tail shows the guest's own messages.
    pub quiet: bool,
    /// Extra kernel command-line parameters, e.g. addresses for the guest's init.
    pub append: Vec<String>,
    /// Network interfaces, `eth0`, `eth1`, ... in the guest, in this order.
    pub nics: Vec<Nic>,
    /// How long [`Vm::boot`] waits for the ready marker.
    pub boot_timeout: Duration,
    /// Extra QEMU arguments, appended last.
    pub qemu_args: Vec<String>,
    /// Boot this disk image instead of `kernel` and `initrd` (see "Booting from a disk"
    /// in the module docs); default none.
    pub disk: Option<PathBuf>,
}

impl VmOptions {
    /// Options with the defaults: 256 MiB, 1 CPU, `quiet`, no NICs,
    /// [`DEFAULT_BOOT_TIMEOUT`].
    pub fn new(
        name: &str,
        kernel: impl Into<PathBuf>,
        initrd: impl Into<PathBuf>,
        ready_marker: &str,
    ) -> VmOptions {
        VmOptions {
            name: name.to_owned(),
            kernel: kernel.into(),
            initrd: initrd.into(),
            ready_marker: ready_marker.to_owned(),
            memory_mib: 256,
            cpus: 1,
            quiet: true,
            append: Vec::new(),
            nics: Vec::new(),
            boot_timeout: DEFAULT_BOOT_TIMEOUT,
            qemu_args: Vec::new(),
            disk: None,
        }
    }
}

/// One network interface of a VM.
#[derive(Clone, Debug)]
pub enum Nic {
    /// QEMU user-mode networking, isolated (`restrict=on`): the guest (at
    /// [`USER_NET_GUEST_ADDR`]) can be reached only through the TCP forwards
    /// `(host_port, guest_port)`, bound to 127.0.0.1; host port 0 picks a free port.
    User { hostfwd: Vec<(u16, u16)> },
    /// A port on a private L2 segment; the MAC is [`Mac::for_vm`] unless given.
    Net { net: VirtualNet, mac: Option<Mac> },
}

impl Nic {
    /// User networking with TCP forwards from free ports on 127.0.0.1 to `guest_ports`.
    pub fn user(guest_ports: &[u16]) -> Nic {
        Nic::User {
            hostfwd: guest_ports.iter().map(|&g| (0, g)).collect(),
        }
    }

    /// A port on `net` with the deterministic MAC.
    pub fn net(net: &VirtualNet) -> Nic {
        Nic::Net {
            net: net.clone(),
            mac: None,
        }
    }
}

/// An Ethernet address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// The MAC of NIC `index` of the VM called `name`: `52:54:` (locally administered,
    /// QEMU's usual prefix), three bytes of a hash of the name, and the index. The same
    /// on every run, so a capture or a DHCP lease of one run compares with the next.
    pub fn for_vm(name: &str, index: usize) -> Mac {
        // FNV-1a: stable across Rust versions, unlike std's DefaultHasher.
        let hash = name.bytes().fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        let [a, b, c, _] = hash.to_be_bytes();
        Mac([0x52, 0x54, a, b, c, index as u8])
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// A private L2 segment for VMs: a network namespace with a bridge (`br0`) that the VMs'
/// tap devices join. A cheap handle: clones share the segment, and the namespace is
/// deleted when the last clone (VMs on it hold one) drops.
#[derive(Clone, Debug)]
pub struct VirtualNet {
    inner: Arc<NetInner>,
}

#[derive(Debug)]
struct NetInner {
    ns: Netns,
    taps: AtomicUsize,
    /// MAC -> VM name, to refuse a second NIC with the same address on the segment.
    macs: Mutex<HashMap<Mac, String>>,
}

impl VirtualNet {
    /// The bridge's name inside the namespace.
    pub const BRIDGE: &str = "br0";

    /// Creates the segment; `label` shows in the namespace name (see [`Netns::new`]).
    pub fn new(label: &str) -> Result<VirtualNet> {
        let ns = Netns::new(label)?;
        ns.ip(&["link", "add", Self::BRIDGE, "type", "bridge"])?;
        ns.ip(&["link", "set", Self::BRIDGE, "up"])?;
        Ok(VirtualNet {
            inner: Arc::new(NetInner {
                ns,
                taps: AtomicUsize::new(0),
                macs: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Gives the namespace an address on the segment (CIDR, e.g. `192.0.2.254/24`), so
    /// commands run in it ([`Netns::exec`]) reach the VMs.
    pub fn add_address(&self, cidr: &str) -> Result<()> {
        let mut args = vec!["addr", "add", cidr, "dev", Self::BRIDGE];
        if cidr.contains(':') {
            args.push("nodad");
        }
        self.inner.ns.ip(&args).map(drop)
    }

    /// The namespace holding the bridge and the taps.
    pub fn netns(&self) -> &Netns {
        &self.inner.ns
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        self.inner.ns.name()
    }

    /// Creates a tap device in the namespace, attached to the bridge and up, and returns
    /// its name and open file. The tap is not persistent: it disappears when the last
    /// descriptor (QEMU's) closes.
    fn open_tap(&self) -> Result<(String, File)> {
        let ifname = format!("tap{}", self.inner.taps.fetch_add(1, Ordering::Relaxed));
        let file = self
            .inner
            .ns
            .enter(|| open_tap_here(&ifname))?
            .context(|| format!("create tap {ifname} in namespace {}", self.name()))?;
        self.inner
            .ns
            .ip(&["link", "set", &ifname, "master", Self::BRIDGE])?;
        self.inner.ns.ip(&["link", "set", &ifname, "up"])?;
        Ok((ifname, file))
    }

    fn claim(&self, mac: Mac, vm: &str) -> Result<()> {
        let mut macs = self.inner.macs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(owner) = macs.get(&mac) {
            return Err(Error::Io {
                what: format!("put VM `{vm}` on {}", self.name()),
                source: std::io::Error::new(
                    ErrorKind::AlreadyExists,
                    format!("MAC {mac} is already used there by VM `{owner}` (same VM name?)"),
                ),
            });
        }
        macs.insert(mac, vm.to_owned());
        Ok(())
    }

    fn release(&self, mac: Mac) {
        let mut macs = self.inner.macs.lock().unwrap_or_else(|e| e.into_inner());
        macs.remove(&mac);
    }
}

/// Opens `/dev/net/tun` and creates tap `ifname` in the calling thread's namespace.
fn open_tap_here(ifname: &str) -> std::io::Result<File> {
    // _IOW('T', 202, int), from <linux/if_tun.h>; the libc crate lacks it.
    const TUNSETIFF: u64 = 0x4004_54ca;
    const IFF_TAP: i16 = 0x0002;
    const IFF_NO_PI: i16 = 0x1000;
    /// `struct ifreq` as TUNSETIFF reads it: the name, then the flags in the union.
    #[repr(C)]
    struct IfReq {
        name: [u8; libc::IFNAMSIZ],
        flags: i16,
        _rest: [u8; 22],
    }
    if ifname.len() >= libc::IFNAMSIZ {
        return Err(std::io::Error::new(
            ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    let file = File::options()
        .read(true)
        .write(true)
        .open("/dev/net/tun")?;
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: IFF_TAP | IFF_NO_PI,
        _rest: [0; 22],
    };
    req.name[..ifname.len()].copy_from_slice(ifname.as_bytes());
    // SAFETY: TUNSETIFF reads and writes a `struct ifreq`, which `req` is laid out as
    // (40 bytes), and `req` outlives the call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF as _, &mut req) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(file)
}

/// A NIC as the VM got it.
#[derive(Clone, Debug)]
pub struct NicInfo {
    /// The guest's name for it: `eth<index>`.
    pub guest_ifname: String,
    pub mac: Mac,
    /// The segment for a [`Nic::Net`].
    pub net: Option<VirtualNet>,
    /// The tap device's name inside the segment's namespace (e.g. to capture on it).
    pub tap: Option<String>,
}

/// A TCP forward from the host's loopback into a guest on user networking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostForward {
    /// Index of the NIC in [`VmOptions::nics`].
    pub nic: usize,
    /// 127.0.0.1 and the host port.
    pub host: SocketAddr,
    pub guest_port: u16,
}

/// What a command printed (stdout and stderr, merged, newlines as `\n`) and its status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandOutput {
    pub status: i32,
    pub output: String,
}

impl CommandOutput {
    pub fn success(&self) -> bool {
        self.status == 0
    }

    /// The output without trailing newlines and blanks, e.g. for `uname -r`.
    pub fn trimmed(&self) -> &str {
        self.output.trim_end()
    }
}

/// A position in a VM's console log ([`Vm::console_mark`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConsoleMark(u64);

/// The VM's copy of `disk`: a qcow2 overlay in `dir` with `disk` as its backing file.
fn disk_overlay(vm: &str, disk: &Path, dir: &Path) -> Result<PathBuf> {
    let qemu_img = require::tool("qemu-img", "qemu-utils")?;
    let backing = std::fs::canonicalize(disk)
        .context(|| format!("VM `{vm}`: resolve the disk {}", disk.display()))?;
    let format = if backing.extension().is_some_and(|e| e == "qcow2") {
        "qcow2"
    } else {
        "raw"
    };
    let overlay = dir.join("disk.qcow2");
    let out = Command::new(&qemu_img)
        .args(["create", "-q", "-f", "qcow2", "-F", format, "-b"])
        .arg(&backing)
        .arg(&overlay)
        .output()
        .context(|| format!("VM `{vm}`: run {}", qemu_img.display()))?;
    if !out.status.success() {
        return Err(Error::Command {
            command: format!("qemu-img create -b {} (VM `{vm}`)", backing.display()),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim_end().to_owned(),
        });
    }
    Ok(overlay)
}

/// A running VM; QEMU is killed and the VM directory removed on drop.
#[derive(Debug)]
pub struct Vm {
    name: String,
    ready_marker: String,
    boot_timeout: Duration,
    accel: &'static str,
    started: Instant,
    boot_to_ready: Duration,
    console: PathBuf,
    cmd_sock: PathBuf,
    nics: Vec<NicInfo>,
    forwards: Vec<HostForward>,
    channel: Mutex<Option<Channel>>,
    // Dropped in this order after `drop` has stopped QEMU: MACs released, then the
    // directory removed.
    process: Process,
    _claims: Claims,
    dir: Option<TempDir>,
}

impl Vm {
    /// Starts the VM and waits until its ready marker is on the console.
    pub fn boot(opts: VmOptions) -> Result<Vm> {
        let mut vm = Vm::start(opts)?;
        vm.wait_ready()?;
        Ok(vm)
    }

    /// Starts all VMs, then waits for each: they boot side by side, which under TCG on
    /// several cores is much faster than one after the other. Any failure drops them all.
    pub fn boot_all(all: Vec<VmOptions>) -> Result<Vec<Vm>> {
        let mut vms = all.into_iter().map(Vm::start).collect::<Result<Vec<_>>>()?;
        for vm in &mut vms {
            vm.wait_ready()?;
        }
        Ok(vms)
    }

    fn start(opts: VmOptions) -> Result<Vm> {
        let qemu = require::tool(QEMU, "qemu-system-x86")?;
        let name = opts.name.clone();
        let boot_files = match &opts.disk {
            Some(disk) => vec![("disk", disk)],
            None => vec![("kernel", &opts.kernel), ("initrd", &opts.initrd)],
        };
        for (what, path) in boot_files {
            File::open(path).context(|| format!("VM `{name}`: open {what} {}", path.display()))?;
        }
        let accel = accelerator()?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("tb-vm-{}-", sanitize(&name)))
            .tempdir()
            .context(|| format!("VM `{name}`: create its directory"))?;
        let console = dir.path().join("console.log");
        let cmd_sock = dir.path().join("cmd.sock");

        // Taps first: QEMU gets their descriptors at numbers above all of them, so moving
        // one into place never overwrites another.
        let mut claims = Claims(Vec::new());
        let mut taps: Vec<File> = Vec::new();
        let mut nics = Vec::new();
        let mut forwards = Vec::new();
        enum Backend {
            User(String),
            Tap(usize),
        }
        let mut backends = Vec::new();
        for (i, nic) in opts.nics.iter().enumerate() {
            let guest_ifname = format!("eth{i}");
            match nic {
                Nic::User { hostfwd } => {
                    let mut netdev = format!("user,id=n{i},restrict=on");
                    for &(host_port, guest_port) in hostfwd {
                        let host_port = if host_port == 0 {
                            free_port()?
                        } else {
                            host_port
                        };
                        netdev += &format!(",hostfwd=tcp:127.0.0.1:{host_port}-:{guest_port}");
                        forwards.push(HostForward {
                            nic: i,
                            host: SocketAddr::from((Ipv4Addr::LOCALHOST, host_port)),
                            guest_port,
                        });
                    }
                    backends.push(Backend::User(netdev));
                    nics.push(NicInfo {
                        guest_ifname,
                        mac: Mac::for_vm(&name, i),
                        net: None,
                        tap: None,
                    });
                }
                Nic::Net { net, mac } => {
                    let mac = mac.unwrap_or_else(|| Mac::for_vm(&name, i));
                    net.claim(mac, &name)?;
                    claims.0.push((net.clone(), mac));
                    let (tap, file) = net.open_tap()?;
                    backends.push(Backend::Tap(taps.len()));
                    taps.push(file);
                    nics.push(NicInfo {
                        guest_ifname,
                        mac,
                        net: Some(net.clone()),
                        tap: Some(tap),
                    });
                }
            }
        }
        let first_fd = taps.iter().map(|f| f.as_raw_fd()).max().unwrap_or(2) + 1;
        let fd_moves: Vec<(RawFd, RawFd)> = taps
            .iter()
            .enumerate()
            .map(|(i, f)| (f.as_raw_fd(), first_fd + i as RawFd))
            .collect();

        let mut cmdline = vec!["console=ttyS0", "panic=-1", "net.ifnames=0"];
        if opts.quiet {
            cmdline.push("quiet");
        }
        cmdline.extend(opts.append.iter().map(String::as_str));

        let mut args: Vec<String> = Vec::new();
        let mut arg = |a: &str, b: String| {
            args.push(a.to_owned());
            args.push(b);
        };
        for a in accel.args {
            arg("-accel", (*a).to_owned());
        }
        arg("-name", format!("guest={}", sanitize(&name)));
        arg("-m", opts.memory_mib.to_string());
        arg("-smp", opts.cpus.to_string());
        match &opts.disk {
            None => {
                arg("-kernel", opts.kernel.display().to_string());
                arg("-initrd", opts.initrd.display().to_string());
                arg("-append", cmdline.join(" "));
            }
            Some(disk) => {
                let overlay = disk_overlay(&name, disk, dir.path())?;
                arg(
                    "-drive",
                    format!("if=none,id=disk,format=qcow2,file={}", qemu_value(&overlay)),
                );
                arg(
                    "-device",
                    format!("virtio-blk-pci,drive=disk,addr={DISK_SLOT:#04x},bootindex=1"),
                );
                let file = dir.path().join("cmdline");
                std::fs::write(&file, format!("{}\n", opts.append.join(" ")))
                    .context(|| format!("VM `{name}`: write {}", file.display()))?;
                arg(
                    "-fw_cfg",
                    format!("name={FW_CFG_CMDLINE},file={}", qemu_value(&file)),
                );
            }
        }
        arg(
            "-chardev",
            format!("file,id=con,path={}", qemu_value(&console)),
        );
        arg("-serial", "chardev:con".into());
        arg(
            "-chardev",
            format!(
                "socket,id=cmd,path={},server=on,wait=off",
                qemu_value(&cmd_sock)
            ),
        );
        arg("-serial", "chardev:cmd".into());
        for (i, (backend, nic)) in backends.iter().zip(&nics).enumerate() {
            let netdev = match backend {
                Backend::User(netdev) => netdev.clone(),
                Backend::Tap(t) => format!("tap,id=n{i},fd={}", fd_moves[*t].1),
            };
            arg("-netdev", netdev);
            arg(
                "-device",
                format!(
                    "virtio-net-pci,netdev=n{i},mac={},addr={:#04x}",
                    nic.mac,
                    FIRST_NIC_SLOT + i
                ),
            );
        }
        // No -nographic: with -nodefaults it adds nothing but SeaBIOS's serial console,
        // whose screen-clearing escapes would land on the marker's line.
        args.extend(["-nodefaults", "-no-user-config", "-display", "none"].map(String::from));
        if opts.disk.is_none() {
            // A disk's slots need reboots (see the module docs).
            args.push("-no-reboot".into());
        }
        args.extend(opts.qemu_args.iter().cloned());

        let mut cmd = Command::new(&qemu);
        cmd.args(&args).current_dir(dir.path());
        if !fd_moves.is_empty() {
            // SAFETY: dup2 is async-signal-safe, and the closure only reads a Vec that was
            // allocated before the fork.
            unsafe {
                cmd.pre_exec(move || {
                    for &(from, to) in &fd_moves {
                        if libc::dup2(from, to) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    Ok(())
                });
            }
        }
        let started = Instant::now();
        let process = Process::spawn(
            &format!("QEMU of VM `{name}`"),
            cmd,
            &dir.path().join("qemu.log"),
        )?;
        // QEMU holds its own copies; ours would keep the taps alive after it dies.
        drop(taps);
        Ok(Vm {
            name,
            ready_marker: opts.ready_marker,
            boot_timeout: opts.boot_timeout,
            accel: accel.name,
            started,
            boot_to_ready: Duration::ZERO,
            console,
            cmd_sock,
            nics,
            forwards,
            channel: Mutex::new(None),
            process,
            _claims: claims,
            dir: Some(dir),
        })
    }

    fn wait_ready(&mut self) -> Result<()> {
        let marker = self.ready_marker.clone();
        self.wait_for_line(&marker, self.boot_timeout)?;
        self.boot_to_ready = self.started.elapsed();
        Ok(())
    }

    /// Waits until `line` appears as a line of its own on the console (blanks and
    /// terminal escapes around it ignored). Fails at once, with the console tail, when
    /// QEMU exits or the guest kernel panics; at `timeout` otherwise.
    pub fn wait_for_line(&mut self, line: &str, timeout: Duration) -> Result<()> {
        self.wait_for_line_since(ConsoleMark(0), line, timeout)
    }

    /// Where the console is now: what came before it is not searched by
    /// [`Vm::wait_for_line_since`] and [`Vm::wait_ready_since`] (an earlier boot's lines).
    pub fn console_mark(&self) -> ConsoleMark {
        ConsoleMark(std::fs::metadata(&self.console).map_or(0, |m| m.len()))
    }

    /// The console since `mark`, as [`Vm::console`] gives it.
    pub fn console_since(&self, mark: ConsoleMark) -> String {
        let raw = std::fs::read(&self.console).unwrap_or_default();
        let from = usize::try_from(mark.0).unwrap_or(usize::MAX).min(raw.len());
        clean_console(&raw[from..])
    }

    /// [`Vm::wait_for_line`], looking only at what the console printed after `mark`.
    pub fn wait_for_line_since(
        &mut self,
        mark: ConsoleMark,
        line: &str,
        timeout: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.console_since(mark);
            if text.lines().any(|l| l.trim() == line) {
                return Ok(());
            }
            if text.contains(PANIC_LINE) {
                // `panic=-1` makes QEMU exit right after the panic report; let it finish.
                let grace = Instant::now() + Duration::from_secs(2);
                while self.process.is_running() && Instant::now() < grace {
                    std::thread::sleep(Duration::from_millis(50));
                }
                return Err(self.not_ready_with(
                    format!("the guest kernel panicked before printing `{line}`"),
                    panic_excerpt(&self.console_since(mark)),
                ));
            }
            if !self.process.is_running() {
                return Err(self.not_ready(format!(
                    "QEMU exited before the guest printed `{line}`; QEMU said: {}",
                    self.process.log_tail(10).trim()
                )));
            }
            if Instant::now() >= deadline {
                return Err(self.not_ready(format!(
                    "the guest did not print the line `{line}` on its console within {timeout:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the ready marker printed after `mark`: the guest rebooted (a disk's
    /// slots, see the module docs) and is ready again. The next [`Vm::run`] first syncs
    /// with the new shell on ttyS1.
    pub fn wait_ready_since(&mut self, mark: ConsoleMark, timeout: Duration) -> Result<()> {
        let marker = self.ready_marker.clone();
        self.wait_for_line_since(mark, &marker, timeout)?;
        let mut channel = self.channel.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(channel) = channel.as_mut() {
            channel.synced = false;
        }
        Ok(())
    }

    fn not_ready(&self, reason: String) -> Error {
        self.not_ready_with(reason, self.console_tail(30))
    }

    fn not_ready_with(&self, reason: String, mut tail: String) -> Error {
        if tail.trim().is_empty() {
            tail = "(nothing on the console yet)".into();
        }
        let mut log = self.console.display().to_string();
        if !keep_vm() {
            log += " (removed on drop; KEEP_VM=1 keeps it)";
        }
        Error::NotReady {
            server: format!(
                "VM `{}` ({}, QEMU pid {})",
                self.name,
                self.accel,
                self.pid()
            ),
            reason,
            log,
            tail,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The VM's private directory (console.log, qemu.log, cmd.sock).
    pub fn dir(&self) -> &Path {
        self.console.parent().unwrap_or(Path::new("/"))
    }

    /// QEMU's pid.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Whether QEMU still runs.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// `kvm` or `tcg`: what the VM was started with (`kvm` may still fall back to TCG).
    pub fn accelerator(&self) -> &'static str {
        self.accel
    }

    /// Time from starting QEMU to seeing the ready marker.
    pub fn boot_to_ready(&self) -> Duration {
        self.boot_to_ready
    }

    /// The serial console's log file (raw bytes as the guest wrote them).
    pub fn console_path(&self) -> &Path {
        &self.console
    }

    /// Everything the guest printed on its console so far, as text: carriage returns
    /// and terminal escape sequences removed.
    pub fn console(&self) -> String {
        clean_console(&std::fs::read(&self.console).unwrap_or_default())
    }

    /// The last `lines` lines of [`Vm::console`].
    pub fn console_tail(&self, lines: usize) -> String {
        tail(&self.console(), lines)
    }

    /// The NICs in the order of [`VmOptions::nics`].
    pub fn nics(&self) -> &[NicInfo] {
        &self.nics
    }

    /// All host forwards of the user-network NICs.
    pub fn forwards(&self) -> &[HostForward] {
        &self.forwards
    }

    /// Where on the host's loopback `guest_port` is forwarded to (the first forward of
    /// that port if several NICs forward it).
    pub fn host_addr(&self, guest_port: u16) -> Option<SocketAddr> {
        self.forwards
            .iter()
            .find(|f| f.guest_port == guest_port)
            .map(|f| f.host)
    }

    /// The host port `guest_port` is forwarded from.
    pub fn host_port(&self, guest_port: u16) -> Option<u16> {
        self.host_addr(guest_port).map(|a| a.port())
    }

    /// Runs `cmd` (any `sh` text, several lines allowed) in the guest's shell on ttyS1
    /// and returns its merged output and exit status; a non-zero status is not an error
    /// here (see [`Vm::succeed`]). Fails when the command cannot be sent (see the module
    /// docs for the limits), when no status comes within `timeout` (the command then gets
    /// a Ctrl-C), or when QEMU is gone.
    pub fn run(&self, cmd: &str, timeout: Duration) -> Result<CommandOutput> {
        // Checked with a tag as long as any real one, so the limits hold when it is sent.
        command_line(cmd, &"x".repeat(MAX_TAG)).map_err(|why| self.command_error(cmd, why))?;
        let deadline = Instant::now() + timeout;
        let mut guard = self.channel.lock().unwrap_or_else(|e| e.into_inner());
        let channel = match &mut *guard {
            Some(channel) => channel,
            empty => empty.insert(Channel::connect(&self.cmd_sock).context(|| {
                format!("VM `{}`: connect to {}", self.name, self.cmd_sock.display())
            })?),
        };
        let result = channel.exchange(cmd, deadline);
        match result {
            Ok(Exchange::Done(output)) => Ok(output),
            Ok(Exchange::NoShell) => Err(self.command_error(
                cmd,
                format!(
                    "no shell answered on ttyS1 within {timeout:?} (does the image run one? \
                     see testbed::vm)\n--- console tail ---\n{}",
                    self.console_tail(20)
                ),
            )),
            Ok(Exchange::TimedOut(partial)) => Err(self.command_error(
                cmd,
                format!(
                    "no exit status within {timeout:?} (sent Ctrl-C); output so far:\n{partial}"
                ),
            )),
            Err(e) => {
                *guard = None;
                Err(self.command_error(
                    cmd,
                    format!(
                        "command channel: {e} (QEMU gone?)\n--- console tail ---\n{}",
                        self.console_tail(20)
                    ),
                ))
            }
        }
    }

    /// [`Vm::run`], failing unless the status is 0; returns the output.
    pub fn succeed(&self, cmd: &str, timeout: Duration) -> Result<String> {
        let out = self.run(cmd, timeout)?;
        if out.success() {
            Ok(out.output)
        } else {
            Err(Error::Command {
                command: format!("{cmd} (in VM `{}`)", self.name),
                status: format!("exit status {}", out.status),
                stderr: out.output.trim_end().to_owned(),
            })
        }
    }

    fn command_error(&self, cmd: &str, why: String) -> Error {
        Error::Command {
            command: format!("{cmd} (in VM `{}`)", self.name),
            status: "no result".into(),
            stderr: why,
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- VM `{}`: last lines of its console ({}) ---\n{}\n--- QEMU log ---\n{}",
                self.name,
                self.console.display(),
                self.console_tail(40),
                self.process.log_tail(10),
            );
        }
        self.process.stop();
        if keep_vm() {
            if let Some(dir) = self.dir.take() {
                eprintln!(
                    "KEEP_VM=1: kept VM `{}` in {}",
                    self.name,
                    dir.keep().display()
                );
            }
        }
    }
}

/// MAC addresses a VM holds on its segments, given back when it drops (also when `boot`
/// fails half-way).
#[derive(Debug)]
struct Claims(Vec<(VirtualNet, Mac)>);

impl Drop for Claims {
    fn drop(&mut self) {
        for (net, mac) in &self.0 {
            net.release(*mac);
        }
    }
}

/// The host end of the guest shell on ttyS1.
#[derive(Debug)]
struct Channel {
    stream: UnixStream,
    /// Bytes read but not yet consumed by a command.
    buf: Vec<u8>,
    /// Distinguishes this channel's markers from any other text.
    nonce: String,
    seq: u64,
    synced: bool,
}

enum Exchange {
    Done(CommandOutput),
    TimedOut(String),
    NoShell,
}

impl Channel {
    fn connect(path: &Path) -> std::io::Result<Channel> {
        let stream = UnixStream::connect(path)?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        Ok(Channel {
            stream,
            buf: Vec::new(),
            nonce: format!("{:x}", nanos ^ std::process::id()),
            seq: 0,
            synced: false,
        })
    }

    /// Sends `cmd` framed by fresh markers and reads until its end marker.
    fn exchange(&mut self, cmd: &str, deadline: Instant) -> std::io::Result<Exchange> {
        if !self.synced && !self.sync(deadline)? {
            return Ok(Exchange::NoShell);
        }
        self.seq += 1;
        let tag = format!("{}x{}", self.nonce, self.seq);
        let line =
            command_line(cmd, &tag).map_err(|e| std::io::Error::new(ErrorKind::InvalidInput, e))?;
        self.send(&line, deadline)?;
        loop {
            if let Some((consumed, output)) = parse_frame(&self.buf, &tag) {
                self.buf.drain(..consumed);
                return Ok(Exchange::Done(output));
            }
            if !self.fill(deadline)? {
                let partial = partial_output(&self.buf, &tag);
                // Interrupt the command; the next one re-syncs and skips its leftovers.
                let _ = self.stream.write_all(b"\x03\n");
                self.synced = false;
                return Ok(Exchange::TimedOut(partial));
            }
        }
    }

    /// Probes until the shell answers, turning the terminal echo off on the way.
    fn sync(&mut self, deadline: Instant) -> std::io::Result<bool> {
        let answer = format!("TBY{}", self.nonce);
        let probe = format!("\nstty -echo 2>/dev/null; echo TB''Y{}\n", self.nonce);
        loop {
            self.send(&probe, deadline)?;
            let until = (Instant::now() + SYNC_PROBE_EVERY).min(deadline);
            loop {
                if let Some(at) = find(&self.buf, answer.as_bytes()) {
                    self.buf.drain(..at + answer.len());
                    self.synced = true;
                    return Ok(true);
                }
                if !self.fill(until)? {
                    break;
                }
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
        }
    }

    fn send(&mut self, text: &str, deadline: Instant) -> std::io::Result<()> {
        let left = deadline.saturating_duration_since(Instant::now());
        self.stream
            .set_write_timeout(Some(left.max(Duration::from_millis(100))))?;
        self.stream.write_all(text.as_bytes())
    }

    /// Reads what arrives before `until`; false when nothing came in time.
    fn fill(&mut self, until: Instant) -> std::io::Result<bool> {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        self.stream.set_read_timeout(Some(left))?;
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk) {
            Ok(0) => Err(std::io::Error::new(
                ErrorKind::UnexpectedEof,
                "QEMU closed the socket",
            )),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(false),
            Err(e) if e.kind() == ErrorKind::Interrupted => Ok(true),
            Err(e) => Err(e),
        }
    }
}

/// The line typed for `cmd`, with `tag` in its markers, or why it cannot be sent.
fn command_line(cmd: &str, tag: &str) -> Result<String, String> {
    if let Some(c) = cmd
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\t'))
    {
        return Err(format!(
            "it contains the control character {c:?}, which the guest terminal would \
             interpret; only newline and tab may appear"
        ));
    }
    let quoted = cmd.replace('\'', r"'\''");
    let line =
        format!("echo TB''S{tag}; ( eval '{quoted}' ) </dev/null 2>&1; echo \"TB\"\"E{tag} $?\"\n");
    if let Some((n, l)) = line
        .split('\n')
        .enumerate()
        .find(|(_, l)| l.len() > MAX_COMMAND_LINE)
    {
        return Err(format!(
            "line {} is {} bytes once quoted; the guest terminal takes at most {} per line \
             (put bulk data into the image)",
            n + 1,
            l.len(),
            MAX_COMMAND_LINE
        ));
    }
    Ok(line)
}

/// Finds the output framed by the markers of `tag` in `buf`: the bytes consumed through
/// the end marker's line and the command's result.
fn parse_frame(buf: &[u8], tag: &str) -> Option<(usize, CommandOutput)> {
    let body = body_start(buf, tag)?;
    let end_marker = format!("TBE{tag} ");
    let end = body + find(&buf[body..], end_marker.as_bytes())?;
    let status_at = end + end_marker.len();
    let newline = status_at + buf[status_at..].iter().position(|&b| b == b'\n')?;
    let status = String::from_utf8_lossy(&buf[status_at..newline])
        .trim()
        .parse()
        .unwrap_or(-1);
    Some((
        newline + 1,
        CommandOutput {
            status,
            output: tty_text(&buf[body..end]),
        },
    ))
}

/// Where the output after the start marker's line begins.
fn body_start(buf: &[u8], tag: &str) -> Option<usize> {
    let start_marker = format!("TBS{tag}");
    let after = find(buf, start_marker.as_bytes())? + start_marker.len();
    Some(after + buf[after..].iter().position(|&b| b == b'\n')? + 1)
}

/// What a command printed so far, for a timeout's error.
fn partial_output(buf: &[u8], tag: &str) -> String {
    body_start(buf, tag)
        .map(|at| tty_text(&buf[at..]))
        .unwrap_or_default()
}

/// Terminal output as text: the terminal's `\r\n` back to `\n`.
fn tty_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace("\r\n", "\n")
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Console bytes as text: carriage returns and escape sequences (colours, the firmware's
/// screen clearing) removed.
fn clean_console(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {}
            '\x1b' => {
                // CSI (`ESC [` ... final byte in @..~) or a two-character escape (`ESC c`).
                if chars.next() == Some('[') {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// The console around a kernel panic: what led to it (an oops often comes first) and the
/// report itself, rather than only the end of the stack trace.
fn panic_excerpt(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains(PANIC_LINE))
        .unwrap_or(lines.len());
    let end = lines.len().min(at + 20);
    lines[at.saturating_sub(20)..end].join("\n")
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn keep_vm() -> bool {
    std::env::var_os("KEEP_VM").is_some_and(|v| v == "1")
}

/// A name safe in a file name and a QEMU option value.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A path as a QEMU option value: commas doubled.
fn qemu_value(path: &Path) -> String {
    path.display().to_string().replace(',', ",,")
}

struct Accel {
    name: &'static str,
    args: &'static [&'static str],
}

/// The accelerator per `VM_ACCEL` (see the module docs).
fn accelerator() -> Result<Accel> {
    const KVM: Accel = Accel {
        name: "kvm",
        args: &["kvm", "tcg"],
    };
    const TCG: Accel = Accel {
        name: "tcg",
        args: &["tcg"],
    };
    match std::env::var("VM_ACCEL").as_deref() {
        Ok("kvm") => Ok(KVM),
        Ok("tcg") => Ok(TCG),
        Ok("auto") | Ok("") | Err(std::env::VarError::NotPresent) => {
            Ok(if kvm_usable() { KVM } else { TCG })
        }
        Ok(other) => Err(Error::Io {
            what: "read VM_ACCEL".into(),
            source: std::io::Error::new(
                ErrorKind::InvalidInput,
                format!("`{other}` is not one of kvm, tcg, auto"),
            ),
        }),
        Err(e) => Err(Error::Io {
            what: "read VM_ACCEL".into(),
            source: std::io::Error::new(ErrorKind::InvalidInput, e.to_string()),
        }),
    }
}

fn kvm_usable() -> bool {
    let opens = File::options()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let virt = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    opens && virt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_output_between_markers_despite_echo_and_prompts() {
        let line = command_line("echo hi", "T1").unwrap();
        // What an interactive shell with echo on sends back: the echo (with \r\n), a
        // stale line, the output, the end marker and a new prompt.
        let mut buf = Vec::new();
        buf.extend_from_slice(b"~ # ");
        buf.extend_from_slice(line.replace('\n', "\r\n").as_bytes());
        buf.extend_from_slice(b"old junk\r\nTBST1\r\nhi\r\nthere\r\nTBET1 3\r\n~ # ");
        let (consumed, out) = parse_frame(&buf, "T1").unwrap();
        assert_eq!(out.output, "hi\nthere\n");
        assert_eq!(out.status, 3);
        assert_eq!(&buf[consumed..], b"~ # ");
        // Output without a final newline runs into the end marker.
        let (_, out) = parse_frame(b"TBST2\r\nabcTBET2 0\r\n", "T2").unwrap();
        assert_eq!(out.output, "abc");
        // Incomplete: no status line yet.
        assert!(parse_frame(b"TBST3\r\nabcTBET3 ", "T3").is_none());
        assert_eq!(partial_output(b"TBST3\r\nabc", "T3"), "abc");
    }

    #[test]
    fn typed_markers_differ_from_printed_ones() {
        let line = command_line("echo 'a'\necho b", "T9").unwrap();
        assert!(!line.contains("TBST9"), "{line}");
        assert!(!line.contains("TBET9"), "{line}");
        assert!(line.contains(r"eval 'echo '\''a'\''"), "{line}");
    }

    #[test]
    fn refuses_control_characters_and_long_lines() {
        let err = command_line("echo \x03", "T").unwrap_err();
        assert!(err.contains("control character"), "{err}");
        let err = command_line(&"x".repeat(5000), "T").unwrap_err();
        assert!(err.contains("at most 4000"), "{err}");
        assert!(command_line(&"x\n".repeat(3000), "T").is_ok());
    }

    #[test]
    fn console_text_loses_escapes_and_carriage_returns() {
        let raw = b"\x1bc\x1b[?7l\x1b[2JREADY\r\n\x1b[0;32mok\x1b[0m\r\n";
        assert_eq!(clean_console(raw), "READY\nok\n");
    }

    #[test]
    fn panic_excerpt_shows_the_panic_and_what_led_to_it() {
        let mut console: Vec<String> = (0..100).map(|i| format!("line {i}")).collect();
        console[50] = format!("{PANIC_LINE}: sysrq triggered crash");
        let excerpt = panic_excerpt(&console.join("\n"));
        assert!(excerpt.starts_with("line 30\n"), "{excerpt}");
        assert!(excerpt.contains(PANIC_LINE), "{excerpt}");
        assert!(excerpt.ends_with("line 69"), "{excerpt}");
    }

    #[test]
    fn macs_are_stable_and_distinct() {
        let a = Mac::for_vm("gw", 0);
        assert_eq!(a, Mac::for_vm("gw", 0));
        assert_ne!(a, Mac::for_vm("gw", 1));
        assert_ne!(a, Mac::for_vm("host", 0));
        assert!(a.to_string().starts_with("52:54:"));
        assert_eq!(a.to_string().len(), 17);
    }
}
