# What every appliance shares: a small headless system with no login over the network
# (an operator gets the serial console). The disk layout is in disk.nix, which only the
# installable images use (the VM tests bring their own).
{ lib, modulesPath, ... }:
{
  imports = [ "${modulesPath}/profiles/minimal.nix" ];

  boot.kernelParams = [ "console=ttyS0,115200" ];
  boot.initrd.availableKernelModules = [
    "virtio_pci"
    "virtio_net"
    "virtio_blk"
  ];

  # Static addresses come from the deployment (networking.interfaces); DHCP otherwise.
  networking.useDHCP = lib.mkDefault true;
  services.openssh.enable = lib.mkDefault false;
  documentation.enable = false;

  system.stateVersion = "26.05";
}
