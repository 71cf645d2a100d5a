//! The A/B disk image of a VM appliance, `disk.img`, and the slot tool inside the
//! appliance, `appliance-slot`: rolling upgrades with a boot-once trial and rollback,
//! made of existing tools (GRUB for BIOS, dosfstools, mtools; busybox in the guest).
//!
//! ```text
//! sector 0        MBR: GRUB's boot.img, the disk id, four partition entries
//! sector 1..      GRUB's core.img (biosdisk, msdos partitions, FAT, loadenv, linux)
//! partition 1     FAT "AB-BOOT"    grub.cfg, grubenv (the boot state)
//! partition 2     FAT "AB-SLOT-A"  vmlinuz, initramfs.cpio.gz, SHA256SUMS
//! partition 3     FAT "AB-SLOT-B"  the same, empty in a new image
//! ```
//!
//! The boot state is GRUB's environment block `grubenv`: `good` (the slot known to
//! work), `try` (a slot to boot once), `trying` (the slot on trial) and `failed` (the
//! last slot whose trial failed). GRUB boots `try` if it is set, clearing it and
//! setting `trying` with `save_env` first (so the trial happens once, whatever
//! becomes of it), else `good`, and tells the kernel which: `appliance.slot=A|B` and
//! `appliance.trial=0|1`. In the appliance, [`TOOL`] then:
//!
//! * in `rcS`, once the modules are loaded and before the ruleset, the setup steps and
//!   the services (`appliance-slot boot`): on a trial, starts the deadline
//!   (`appliance.slot_deadline=SECONDS`, default [`DEFAULT_DEADLINE_SECS`]), after
//!   which the machine reboots (`reboot -f`) into the good slot: the rollback. Not on a
//!   trial but `trying` set: that trial failed; `failed` records it.
//! * after the ready check passed (`appliance-slot ready`): on a trial, makes the
//!   slot the good one (the commit).
//! * `appliance-slot install KERNEL INITRAMFS` writes the slot not running and sets
//!   `try` to it; `appliance-slot status` prints the state as `KEY=VALUE` lines.
//!
//! GRUB's command line is fixed ([`CMDLINE`] and the slot keys): the same disk boots
//! anywhere. Per-machine `appliance.*` keys come from the QEMU firmware config file
//! [`FW_CFG_CMDLINE`] (`-fw_cfg name=opt/appliance/cmdline,file=...`), which `rcS`
//! reads after `/proc/cmdline` (the test harness's disk mode writes it).
//!
//! Reproducible: the MBR is written here with a disk id hashed from the appliance's
//! name, the file systems get volume ids hashed the same way and `mkfs.vfat
//! --invariant`, the files are copied with their times set to the build's epoch
//! (`mcopy -m`, in UTC), and `grub-mkimage` writes the same core.img for the same
//! modules.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};

use crate::oci::sha256_hex;
use crate::tree::Tree;

/// The slot tool in the appliance (VM flavour).
pub const TOOL: &str = "/usr/sbin/appliance-slot";
/// The extra kernel command line a QEMU host may give (`-fw_cfg
/// name=opt/appliance/cmdline,...`), as the `qemu_fw_cfg` module shows it.
pub const FW_CFG_CMDLINE: &str = "/sys/firmware/qemu_fw_cfg/by_name/opt/appliance/cmdline/raw";
/// What GRUB puts on every kernel command line, before `appliance.slot` and
/// `appliance.trial`.
pub const CMDLINE: &str = "console=ttyS0 panic=-1 net.ifnames=0 quiet";
/// How long a slot on trial has to become ready before the machine reboots into the
/// good slot, unless `appliance.slot_deadline` says otherwise.
pub const DEFAULT_DEADLINE_SECS: u32 = 60;
/// The modules the VM flavour adds to the definition's: the disk (virtio-blk, QEMU's
/// `if=virtio`), its file systems, and the firmware config's sysfs files.
pub const KERNEL_MODULES: [&str; 6] = [
    "virtio_pci",
    "virtio_blk",
    "vfat",
    "nls_cp437",
    "nls_ascii",
    "qemu_fw_cfg",
];
/// The file system labels the tool finds its partitions by.
pub const LABEL_BOOT: &str = "AB-BOOT";
pub const LABEL_A: &str = "AB-SLOT-A";
pub const LABEL_B: &str = "AB-SLOT-B";
/// The file names in a slot.
pub const SLOT_KERNEL: &str = "vmlinuz";
pub const SLOT_INITRAMFS: &str = "initramfs.cpio.gz";

const GRUB_DIR: &str = "/usr/lib/grub/i386-pc";
/// GRUB's modules in core.img: everything grub.cfg uses, nothing read from the disk.
const GRUB_MODULES: [&str; 10] = [
    "biosdisk",
    "part_msdos",
    "fat",
    "normal",
    "loadenv",
    "test",
    "echo",
    "linux",
    "serial",
    "terminfo",
];
const SECTOR: u64 = 512;
const MIB: u64 = 1 << 20;
/// Partition 1 starts at 1 MiB: the room before it holds core.img.
const FIRST_PARTITION: u64 = MIB / SECTOR;
const BOOT_PARTITION: u64 = 8 * MIB;
/// A slot holds at least this much, and twice the first image rounded up to 16 MiB, so
/// that later, bigger images fit.
const MIN_SLOT: u64 = 64 * MIB;
/// FAT stores no time before 1980.
const FAT_EPOCH_MIN: u32 = 315_532_800;

/// The definition's kernel modules and the ones the disk needs ([`KERNEL_MODULES`]).
pub fn kernel_modules(definition: &[String]) -> Vec<String> {
    let mut all = definition.to_vec();
    for m in KERNEL_MODULES {
        if !all.iter().any(|d| d == m) {
            all.push(m.to_owned());
        }
    }
    all
}

/// Adds [`TOOL`] to a VM flavour's tree.
pub fn tool(t: &mut Tree) -> Result<()> {
    t.text(TOOL, &tool_script(), 0o755)
}

/// The disk image as built.
#[derive(Debug, Clone)]
pub struct Disk {
    pub path: PathBuf,
    /// The image's size (it is sparse: most of the slots is holes).
    pub bytes: u64,
    /// The size of each slot partition.
    pub slot_bytes: u64,
}

/// Writes `<dir>/disk.img` for the appliance `name`: slot A holds `kernel` and
/// `initramfs` (their bytes) and is the good slot, slot B is empty.
pub fn disk(name: &str, kernel: &[u8], initramfs: &[u8], epoch: u32, dir: &Path) -> Result<Disk> {
    for (tool, package) in [
        ("grub-mkimage", "grub-common"),
        ("mkfs.vfat", "dosfstools"),
        ("mcopy", "mtools"),
    ] {
        if !on_path(tool) {
            bail!("{tool} is missing: install {package} (scripts/setup does)");
        }
    }
    let boot_img = Path::new(GRUB_DIR).join("boot.img");
    if !boot_img.is_file() {
        bail!(
            "{} is missing: install grub-pc-bin (scripts/setup does)",
            boot_img.display()
        );
    }
    let payload = (kernel.len() + initramfs.len()) as u64;
    let slot = MIN_SLOT.max((2 * payload).div_ceil(16 * MIB) * 16 * MIB);
    let parts = [
        (FIRST_PARTITION, BOOT_PARTITION / SECTOR, LABEL_BOOT),
        (
            FIRST_PARTITION + BOOT_PARTITION / SECTOR,
            slot / SECTOR,
            LABEL_A,
        ),
        (
            FIRST_PARTITION + (BOOT_PARTITION + slot) / SECTOR,
            slot / SECTOR,
            LABEL_B,
        ),
    ];
    let total = (parts[2].0 + parts[2].1) * SECTOR;

    // Work files beside the image, removed at the end; their names get into nothing.
    let work = dir.join("disk.work");
    if work.exists() {
        std::fs::remove_dir_all(&work).with_context(|| format!("remove {}", work.display()))?;
    }
    std::fs::create_dir_all(&work).with_context(|| format!("create {}", work.display()))?;

    let early = work.join("early.cfg");
    std::fs::write(&early, EARLY_CFG).with_context(|| format!("write {}", early.display()))?;
    let core = work.join("core.img");
    let mut mkimage = Command::new("grub-mkimage");
    mkimage
        .args(["-O", "i386-pc", "-p", "(hd0,msdos1)", "-d", GRUB_DIR, "-c"])
        .arg(&early)
        .arg("-o")
        .arg(&core)
        .args(GRUB_MODULES);
    run(mkimage)?;
    let core_img = std::fs::read(&core).with_context(|| format!("read {}", core.display()))?;
    if core_img.len() as u64 > (FIRST_PARTITION - 1) * SECTOR {
        bail!(
            "GRUB's core.img is {} bytes: more than fits before the first partition",
            core_img.len()
        );
    }
    let mut boot_sector = [0u8; 512];
    File::open(&boot_img)
        .and_then(|mut f| f.read_exact(&mut boot_sector))
        .with_context(|| format!("read {}", boot_img.display()))?;

    let path = dir.join("disk.img");
    let _ = std::fs::remove_file(&path);
    let mut f = File::create(&path).with_context(|| format!("create {}", path.display()))?;
    f.set_len(total)
        .with_context(|| format!("size {}", path.display()))?;
    let entries: Vec<(u32, u32)> = parts
        .iter()
        .map(|&(start, len, _)| (start as u32, len as u32))
        .collect();
    f.write_all(&mbr(&boot_sector, disk_id(name), &entries))
        .and_then(|()| f.write_all(&core_img))
        .and_then(|()| f.sync_all())
        .with_context(|| format!("write {}", path.display()))?;
    drop(f);

    for &(start, len, label) in &parts {
        let mut mkfs = Command::new("mkfs.vfat");
        mkfs.args(["--invariant", "-F", "16", "-n", label])
            .args(["-i", &format!("{:08x}", volume_id(name, label))])
            .args(["-h", &start.to_string(), "--offset", &start.to_string()]);
        if label == LABEL_BOOT {
            mkfs.args(["-s", "1"]); // enough clusters for FAT16 in 8 MiB
        }
        mkfs.arg(&path).arg((len * SECTOR / 1024).to_string());
        run(mkfs)?;
    }

    // The files, each with the epoch as its time.
    let time = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(epoch.max(FAT_EPOCH_MIN)));
    let stage = |name: &str, data: &[u8]| -> Result<PathBuf> {
        let p = work.join(name);
        std::fs::write(&p, data).with_context(|| format!("write {}", p.display()))?;
        File::options()
            .write(true)
            .open(&p)
            .and_then(|f| f.set_modified(time))
            .with_context(|| format!("set the time of {}", p.display()))?;
        Ok(p)
    };
    let sums = format!(
        "{}  {SLOT_KERNEL}\n{}  {SLOT_INITRAMFS}\n",
        sha256_hex(kernel),
        sha256_hex(initramfs)
    );
    let boot_files = [
        stage("grub.cfg", grub_cfg(name).as_bytes())?,
        stage("grubenv", &grubenv(&[("good", "A")])?)?,
    ];
    let slot_files = [
        stage(SLOT_KERNEL, kernel)?,
        stage(SLOT_INITRAMFS, initramfs)?,
        stage("SHA256SUMS", sums.as_bytes())?,
    ];
    for (files, &(start, _, _)) in [&boot_files[..], &slot_files[..]].into_iter().zip(&parts) {
        let mut mcopy = Command::new("mcopy");
        mcopy
            .env("TZ", "UTC")
            .env("MTOOLS_SKIP_CHECK", "1")
            .arg("-m")
            .arg("-i")
            .arg(format!("{}@@{}", path.display(), start * SECTOR))
            .args(files)
            .arg("::");
        run(mcopy)?;
    }
    std::fs::remove_dir_all(&work).with_context(|| format!("remove {}", work.display()))?;
    Ok(Disk {
        bytes: total,
        path,
        slot_bytes: slot,
    })
}

/// The MBR: GRUB's boot code (its first 440 bytes, with the floppy check replaced by
/// NOPs as `grub-install` does for a hard disk; it loads core.img from sector 1, its
/// default), the disk id, the partitions (FAT16 LBA, the first active) and the
/// signature.
fn mbr(boot_img: &[u8; 512], disk_id: u32, parts: &[(u32, u32)]) -> [u8; 512] {
    let mut m = [0u8; 512];
    m[..440].copy_from_slice(&boot_img[..440]);
    m[0x66..0x68].copy_from_slice(&[0x90, 0x90]);
    m[440..444].copy_from_slice(&disk_id.to_le_bytes());
    for (i, &(start, len)) in parts.iter().take(4).enumerate() {
        let e = &mut m[446 + 16 * i..462 + 16 * i];
        e[0] = if i == 0 { 0x80 } else { 0 };
        e[1..4].copy_from_slice(&chs(start));
        e[4] = 0x0e;
        e[5..8].copy_from_slice(&chs(start + len - 1));
        e[8..12].copy_from_slice(&start.to_le_bytes());
        e[12..16].copy_from_slice(&len.to_le_bytes());
    }
    m[510] = 0x55;
    m[511] = 0xaa;
    m
}

/// A sector's CHS address as an MBR stores it (255 heads, 63 sectors), or the
/// "use LBA" value beyond cylinder 1023.
fn chs(lba: u32) -> [u8; 3] {
    let (heads, sectors) = (255, 63);
    let c = lba / (heads * sectors);
    if c > 1023 {
        return [0xfe, 0xff, 0xff];
    }
    let h = (lba / sectors) % heads;
    let s = lba % sectors + 1;
    [
        h as u8,
        (s as u8) | ((c >> 2) & 0xc0) as u8,
        (c & 0xff) as u8,
    ]
}

/// GRUB's environment block: its header, `name=value` lines, `#` up to 1024 bytes.
pub fn grubenv(vars: &[(&str, &str)]) -> Result<Vec<u8>> {
    let mut b = b"# GRUB Environment Block\n".to_vec();
    for (k, v) in vars {
        b.extend_from_slice(format!("{k}={v}\n").as_bytes());
    }
    if b.len() > 1024 {
        bail!("the GRUB environment block is over 1024 bytes");
    }
    b.resize(1024, b'#');
    Ok(b)
}

fn fnv1a(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5_u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

fn disk_id(name: &str) -> u32 {
    fnv1a(format!("disk {name}").as_bytes())
}

fn volume_id(name: &str, label: &str) -> u32 {
    fnv1a(format!("{label} {name}").as_bytes())
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .any(|d| d.join(tool).is_file())
}

fn run(mut cmd: Command) -> Result<()> {
    // mkfs.vfat lives in /usr/sbin, not on every user's PATH.
    let path = std::env::var("PATH").unwrap_or_default();
    cmd.env("PATH", format!("{path}:/usr/sbin:/sbin"));
    let shown = format!("{cmd:?}");
    let out = cmd.output().with_context(|| format!("run {shown}"))?;
    if !out.status.success() {
        bail!(
            "{shown} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Built into core.img: GRUB's console on the first serial port (the appliance's
/// console), so its messages and errors show where the kernel's do.
const EARLY_CFG: &str = "serial --unit=0 --speed=115200\n\
                         terminfo serial dumb\n\
                         terminal_input serial\n\
                         terminal_output serial\n";

/// `$prefix/grub.cfg`: the slot choice described in the module docs.
fn grub_cfg(name: &str) -> String {
    format!(
        r#"# Generated by imgbuild for the {name} appliance: boots slot A or B (images/README.md,
# "A/B slots"). grubenv holds good (the slot that works), try (a slot to boot once,
# cleared here before it boots) and trying (the slot on trial, cleared by the
# appliance when it commits the slot).
set good=A
set try=
set trying=
load_env good try trying
if [ "$good" != B ]; then set good=A; fi
set slot=$good
set trial=0
if [ "$try" = A -o "$try" = B ]; then
    set slot=$try
    set trial=1
    set trying=$try
    set try=
    save_env try trying
    # Boot-once needs the cleared try on the disk: without it, no trial.
    load_env try
    if [ -n "$try" ]; then
        echo "grub: cannot clear try in grubenv; not trying slot $slot"
        set slot=$good
        set trial=0
    fi
fi
if [ $trial = 1 ]; then
    echo "grub: booting slot $slot once (trial)"
else
    echo "grub: booting slot $slot"
fi
for s in $slot $good; do
    if [ $s = A ]; then set part=(hd0,msdos2); else set part=(hd0,msdos3); fi
    if [ $s != $slot ]; then
        echo "grub: slot $slot cannot be loaded; booting slot $s"
        set trial=0
    fi
    if linux $part/{kernel} {cmdline} appliance.slot=$s appliance.trial=$trial; then
        if initrd $part/{initramfs}; then
            boot
        fi
    fi
done
echo "grub: no slot can be loaded"
"#,
        kernel = SLOT_KERNEL,
        initramfs = SLOT_INITRAMFS,
        cmdline = CMDLINE,
    )
}

/// [`TOOL`]: busybox sh.
fn tool_script() -> String {
    TOOL_SCRIPT
        .replace("@LABEL_BOOT@", LABEL_BOOT)
        .replace("@LABEL_A@", LABEL_A)
        .replace("@LABEL_B@", LABEL_B)
        .replace("@KERNEL@", SLOT_KERNEL)
        .replace("@INITRAMFS@", SLOT_INITRAMFS)
        .replace("@DEADLINE@", &DEFAULT_DEADLINE_SECS.to_string())
}

const TOOL_SCRIPT: &str = r##"#!/bin/sh
# Generated by imgbuild: the A/B slots of the appliance's boot disk (images/README.md,
# "A/B slots"). GRUB boots the slot to try once, else the good one, and says which on
# the kernel command line (appliance.slot, appliance.trial).
#
#   appliance-slot status                     the boot state and the slots (KEY=VALUE)
#   appliance-slot install KERNEL INITRAMFS   writes the slot not running; it is tried
#                                             once at the next boot
#   appliance-slot commit                     makes the running slot the good one
#   appliance-slot boot     (rcS) on a trial: reboots into the good slot unless ready
#                           within appliance.slot_deadline seconds; else notes a
#                           failed trial
#   appliance-slot ready    (after the ready check) on a trial: commits the slot
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
[ -f /run/appliance.env ] && . /run/appliance.env
slot=${APPLIANCE_SLOT:-}
trial=${APPLIANCE_TRIAL:-0}
deadline=${APPLIANCE_SLOT_DEADLINE:-@DEADLINE@}
run=/run/appliance-slot
mounted=

say() { echo "appliance-slot: $*"; }
die() { say "$*" >&2; exit 1; }

cleanup() {
    for m in $mounted; do umount "$run/$m" 2>/dev/null; done
    rmdir "$run/lock" 2>/dev/null
}

lock() {
    mkdir -p "$run"
    n=0
    until mkdir "$run/lock" 2>/dev/null; do
        n=$((n + 1))
        [ $n -lt 600 ] || die "$run/lock held for a minute: is another appliance-slot stuck?"
        sleep 0.1
    done
    trap cleanup EXIT
    trap 'exit 1' INT TERM
}

need_slot() {
    [ -n "$slot" ] || die "not booted from an A/B disk (no appliance.slot on the kernel command line)"
}

other() { if [ "$1" = A ]; then echo B; else echo A; fi; }

# fs_mount boot|A|B: mounts that file system at $run/NAME.
fs_mount() {
    case "$1" in A) l=@LABEL_A@ ;; B) l=@LABEL_B@ ;; *) l=@LABEL_BOOT@ ;; esac
    dev=$(findfs "LABEL=$l" 2>/dev/null) || die "no file system labelled $l"
    mkdir -p "$run/$1"
    mount -t vfat "$dev" "$run/$1" || die "cannot mount $dev ($l)"
    mounted="$mounted $1"
}

fs_umount() {
    sync
    umount "$run/$1" || die "cannot unmount $run/$1"
    rest=
    for m in $mounted; do [ "$m" = "$1" ] || rest="$rest $m"; done
    mounted=$rest
}

# The boot state, from and to grubenv on the mounted boot file system.
env_read() {
    good=A try= trying= failed=
    if [ -f "$run/boot/grubenv" ]; then
        while IFS= read -r line; do
            case "$line" in
            good=*) good=${line#good=} ;;
            try=*) try=${line#try=} ;;
            trying=*) trying=${line#trying=} ;;
            failed=*) failed=${line#failed=} ;;
            esac
        done < "$run/boot/grubenv"
    fi
    [ "$good" = B ] || good=A
}

env_write() {
    text="# GRUB Environment Block
good=$good
try=$try
trying=$trying
failed=$failed
"
    f=$run/boot/grubenv
    { printf '%s' "$text"; head -c $((1024 - ${#text})) /dev/zero | tr '\0' '#'; } > "$f.new" &&
        mv "$f.new" "$f" && sync || die "cannot write $f"
}

commit() {
    env_read
    good=$slot
    trying=
    [ "$failed" = "$slot" ] && failed=
    env_write
}

case "${1:-}" in
status)
    need_slot
    lock
    fs_mount boot; env_read; fs_umount boot
    echo "booted=$slot"
    echo "trial=$trial"
    echo "good=$good"
    echo "try=$try"
    echo "trying=$trying"
    echo "failed=$failed"
    for s in A B; do
        fs_mount $s
        if [ -f "$run/$s/SHA256SUMS" ]; then
            while read -r sum file; do echo "$s.$file=$sum"; done < "$run/$s/SHA256SUMS"
        else
            echo "$s=empty"
        fi
        fs_umount $s
    done
    ;;
install)
    [ $# -eq 3 ] || die "usage: appliance-slot install KERNEL INITRAMFS"
    [ -f "$2" ] || die "$2: no such file"
    [ -f "$3" ] || die "$3: no such file"
    need_slot
    target=$(other "$slot")
    lock
    fs_mount boot
    env_read
    [ "$good" = "$slot" ] ||
        die "slot $slot runs on trial (the good slot is $good): it must be ready first"
    # Nothing boots the target while it is written.
    try=
    [ "$failed" = "$target" ] && failed=
    env_write
    fs_umount boot
    fs_mount $target
    d=$run/$target
    rm -f "$d/@KERNEL@" "$d/@INITRAMFS@" "$d/SHA256SUMS"
    cp "$2" "$d/@KERNEL@" && cp "$3" "$d/@INITRAMFS@" && sync ||
        die "cannot write slot $target (too small for the image?)"
    (cd "$d" && sha256sum @KERNEL@ @INITRAMFS@ > SHA256SUMS) || die "cannot write $d/SHA256SUMS"
    fs_umount $target
    fs_mount boot
    env_read
    try=$target
    env_write
    fs_umount boot
    say "installed into slot $target: it is tried once at the next boot; slot $good stays the good slot until $target is ready"
    ;;
commit)
    need_slot
    lock
    fs_mount boot; commit; fs_umount boot
    say "slot $slot committed: it is the good slot"
    ;;
boot)
    [ -n "$slot" ] || exit 0
    lock
    fs_mount boot
    env_read
    if [ "$trial" = 1 ]; then
        fs_umount boot
        say "slot $slot on trial: it becomes the good slot once ready, else the machine reboots into slot $good in ${deadline}s"
        (
            sleep "$deadline"
            [ -e "$run/committed" ] && exit 0
            say "slot $slot not ready within ${deadline}s: rebooting into slot $good"
            sync
            sleep 1
            reboot -f
        ) </dev/null >/dev/console 2>&1 &
        echo $! > "$run/watchdog"
    elif [ -n "$trying" ]; then
        failed=$trying
        trying=
        env_write
        fs_umount boot
        say "slot $failed failed its trial: rolled back to slot $slot"
    else
        fs_umount boot
        say "booted slot $slot"
    fi
    ;;
ready)
    [ -n "$slot" ] && [ "$trial" = 1 ] || exit 0
    mkdir -p "$run"
    [ -e "$run/committed" ] && exit 0
    : > "$run/committed"
    [ -f "$run/watchdog" ] && kill "$(cat "$run/watchdog")" 2>/dev/null
    lock
    fs_mount boot; commit; fs_umount boot
    say "slot $slot is ready: committed, it is the good slot now"
    ;;
*)
    die "usage: appliance-slot status | install KERNEL INITRAMFS | commit | boot | ready"
    ;;
esac
"##;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_block_is_grubs() {
        let b = grubenv(&[("good", "A"), ("try", "")]).unwrap();
        assert_eq!(b.len(), 1024);
        assert!(b.starts_with(b"# GRUB Environment Block\ngood=A\ntry=\n#"));
        assert!(b.ends_with(b"####"));
    }

    #[test]
    fn the_mbr_has_three_fat_partitions_and_grubs_code() {
        let mut boot = [0u8; 512];
        boot[0] = 0xeb;
        boot[0x66] = 0x75;
        let m = mbr(&boot, 0x1234_5678, &[(2048, 16384), (18432, 131072)]);
        assert_eq!(m[0], 0xeb);
        assert_eq!(&m[0x66..0x68], &[0x90, 0x90]);
        assert_eq!(&m[440..444], &0x1234_5678_u32.to_le_bytes());
        assert_eq!(m[446], 0x80);
        assert_eq!(m[446 + 4], 0x0e);
        assert_eq!(&m[446 + 8..446 + 12], &2048u32.to_le_bytes());
        assert_eq!(&m[462 + 12..462 + 16], &131072u32.to_le_bytes());
        assert_eq!(&m[478..510], &[0u8; 32]);
        assert_eq!(&m[510..], &[0x55, 0xaa]);
        // LBA 2048 = cylinder 0, head 32, sector 33.
        assert_eq!(chs(2048), [32, 33, 0]);
        assert_eq!(chs(u32::MAX), [0xfe, 0xff, 0xff]);
    }

    #[test]
    fn ids_are_per_appliance() {
        assert_ne!(disk_id("gwx"), disk_id("backend"));
        assert_ne!(volume_id("gwx", LABEL_A), volume_id("gwx", LABEL_B));
        assert_eq!(disk_id("gwx"), disk_id("gwx"));
    }

    #[test]
    fn grub_boots_the_trial_once_and_falls_back_to_the_good_slot() {
        let cfg = grub_cfg("gwx");
        let save = cfg.find("save_env try trying").unwrap();
        let boot = cfg.find("boot\n").unwrap();
        assert!(save < boot, "{cfg}");
        assert!(cfg.contains(&format!("linux $part/vmlinuz {CMDLINE} appliance.slot=$s")));
        assert!(cfg.contains("for s in $slot $good"), "{cfg}");
    }

    #[test]
    fn the_tool_names_its_partitions_and_files() {
        let s = tool_script();
        assert!(!s.contains('@'), "a placeholder is left: {s}");
        for want in [
            LABEL_BOOT,
            LABEL_A,
            LABEL_B,
            "sha256sum vmlinuz initramfs.cpio.gz",
        ] {
            assert!(s.contains(want), "{want}");
        }
        assert!(s.contains("APPLIANCE_SLOT_DEADLINE:-60"));
    }

    #[test]
    fn the_disk_modules_follow_the_definitions() {
        let m = kernel_modules(&["virtio_pci".into(), "nf_tables".into()]);
        assert_eq!(m[..2], ["virtio_pci", "nf_tables"]);
        assert_eq!(m.iter().filter(|m| *m == "virtio_pci").count(), 1);
        assert!(m.iter().any(|m| m == "qemu_fw_cfg"));
    }
}
