# The gwx gateway appliance (images/appliances/gwx.toml): gwx run with the appliance
# grid (images/files/gwx/grid.toml), its sysctls (nix/sysctl.nix, the [sysctl] table of
# that definition) and nf_conntrack loaded first. gwx's ruleset is the firewall.
{ lib, ... }:
{
  imports = [ ./common.nix ];

  networking.hostName = lib.mkDefault "gwx";
  # gwx's nftables table decides what reaches the host; a second firewall would have to
  # accept the same traffic.
  networking.firewall.enable = false;

  services.gwx = {
    enable = true;
    settings = builtins.fromTOML (builtins.readFile ../../images/files/gwx/grid.toml);
    # The image boots each gateway with appliance.gateway=<id>; here: one configuration
    # per gateway (override this).
    gateway = lib.mkDefault "gw1";
  };

  # The appliance definition's other modules (nf_conntrack comes from the module).
  boot.kernelModules = [
    "nf_tables"
    "nft_ct"
    "nft_connlimit"
    "nft_chain_nat"
    "nft_nat"
    "nft_limit"
    "nft_reject_inet"
    "nft_synproxy"
  ];
}
