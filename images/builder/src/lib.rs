//! `imgbuild`: builds the appliance images from the definitions under
//! `images/appliances` (see [`definition`]): for each, a VM image (Debian's kernel and
//! an initramfs with busybox's init) and an OCI image (layout and `docker load` tar),
//! bit for bit the same whenever the same sources are built.
//!
//! * [`definition`]: the TOML an appliance is described in, validated.
//! * [`rootfs`]: the appliance's files as a [`tree::Tree`]; [`closure`] finds the
//!   libraries and kernel modules they need, [`boot`] writes busybox init's config.
//! * [`archive`]: the cpio and tar writers, [`oci`]: the OCI layout and docker tar.
//! * [`slots`]: the VM image as an A/B disk (GRUB, two slots, boot-once and rollback)
//!   and the slot tool inside the appliance.
//! * [`build`]: all of it for one appliance, with sizes and digests.

pub mod archive;
pub mod boot;
pub mod build;
pub mod closure;
pub mod definition;
pub mod oci;
pub mod rootfs;
pub mod slots;
pub mod tree;
