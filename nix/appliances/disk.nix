# The installable appliance: one disk (the qcow2 of `packages.appliance-<name>-qcow2`,
# BIOS boot, the root file system grown to the disk at boot). NixOS generations are the
# appliance's A/B slots: `nixos-rebuild boot` (or `switch`) writes the next one, and the
# boot menu keeps the previous one to roll back to.
{ lib, ... }:
{
  fileSystems."/" = {
    device = "/dev/disk/by-label/nixos";
    fsType = "ext4";
    autoResize = true;
  };
  boot.growPartition = true;
  boot.loader.grub.device = lib.mkDefault "/dev/vda";
  boot.loader.timeout = 1;
}
